package redis

import goredis "github.com/redis/go-redis/v9"

// luaRecord parses the stored format (see record.go) and tells whether a
// record is live at the node's clock, which the caller passes in: a
// record's life is decided by the same clock on every path (Get in Go,
// Incr and Update here), and tests can move it.
const luaRecord = `
local function int64be(s, i)
  local n = 0
  if string.byte(s, i) >= 128 then
    for k = i, i + 7 do n = n * 256 + (255 - string.byte(s, k)) end
    return -n - 1
  end
  for k = i, i + 7 do n = n * 256 + string.byte(s, k) end
  return n
end

-- parse returns the header, the value and the expiry (seconds and
-- nanoseconds; nil for none) of a stored record, or nil if malformed.
local function parse(s)
  local tag = string.byte(s, 1)
  if tag == 1 then
    return string.sub(s, 1, 1), string.sub(s, 2), nil, nil
  end
  if tag == 2 and #s >= 13 then
    local nsec = 0
    for k = 10, 13 do nsec = nsec * 256 + string.byte(s, k) end
    return string.sub(s, 1, 13), string.sub(s, 14), int64be(s, 2), nsec
  end
  return nil
end

local function live(sec, nsec, nowSec, nowNsec)
  if sec == nil then return true end
  return nowSec < sec or (nowSec == sec and nowNsec < nsec)
end
`

// incrScript adds a delta to a counter. KEYS[1] is the counter; ARGV[1]
// the delta (8-byte big-endian two's complement), ARGV[2] and ARGV[3] the
// node's clock (Unix seconds and nanoseconds), ARGV[4] the header of a new
// counter (its expiry) and ARGV[5] its PXAT (0: none). A live counter keeps
// its header and its key's expiry (KEEPTTL). It returns the new value, 8
// bytes; overflow and a live value that is not 8 bytes are errors that
// change nothing.
//
// Lua numbers are doubles, which cannot hold every int64, so the sum is
// computed byte by byte with a carry, and overflow from the sign bits.
var incrScript = goredis.NewScript(luaRecord + `
local function add64(a, b)
  local out = {}
  local carry = 0
  for i = 8, 1, -1 do
    local s = string.byte(a, i) + string.byte(b, i) + carry
    out[i] = s % 256
    carry = math.floor(s / 256)
  end
  local r = string.char(unpack(out))
  local sa, sb, sr = string.byte(a, 1) >= 128, string.byte(b, 1) >= 128, string.byte(r, 1) >= 128
  if sa == sb and sr ~= sa then return nil end
  return r
end

local cur = redis.call('GET', KEYS[1])
local header = ARGV[4]
local old = string.rep('\0', 8)
local keep = false
if cur then
  local h, v, sec, nsec = parse(cur)
  if h == nil then return redis.error_reply('ERR mfa: malformed stored value') end
  if live(sec, nsec, tonumber(ARGV[2]), tonumber(ARGV[3])) then
    if #v ~= 8 then return redis.error_reply('ERR mfa: not a counter') end
    header, old, keep = h, v, true
  end
end
local new = add64(old, ARGV[1])
if new == nil then return redis.error_reply('ERR mfa: counter overflow') end
if keep then
  redis.call('SET', KEYS[1], header .. new, 'KEEPTTL')
elseif ARGV[5] == '0' then
  redis.call('SET', KEYS[1], header .. new)
else
  redis.call('SET', KEYS[1], header .. new, 'PXAT', ARGV[5])
end
return new
`)

// casScript is the write half of Update: a compare-and-set on the whole
// stored value. KEYS[1] is the key; ARGV[1] is "1" if the reader saw a
// stored value and ARGV[2] that value; ARGV[3] is "set" or "del"; ARGV[4]
// the new stored value and ARGV[5] its PXAT (0: none). It returns 1 when
// the key still held what the reader saw and the write was done, 0 when
// another writer came first. A value that is byte for byte what the reader
// saw gives the function the same input, so comparing values is as good as
// comparing versions.
var casScript = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if cur ~= ARGV[2] then return 0 end
elseif cur then
  return 0
end
if ARGV[3] == 'del' then
  redis.call('DEL', KEYS[1])
elseif ARGV[5] == '0' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[4], 'PXAT', ARGV[5])
end
return 1
`)
