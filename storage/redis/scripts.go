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

// luaIndex keeps the key index and the expiry index of the store's prefix
// in step with a write, in the same script. Every write script has KEYS[1]
// the record's Redis key, KEYS[2] the key index (a sorted set of the
// store's keys, all at score 0, so ZRANGE BYLEX lists them in byte order),
// KEYS[3] the expiry index (the same keys scored by their PXAT), and
// ARGV[1] the store's key, ARGV[2] the key prefix and ARGV[3] the sweep
// bound: Unix milliseconds before which a record is surely dead on every
// node and on the server.
//
// Redis drops an expired record but not its index entries, so each write
// also sweeps a few records whose expiry passed the bound: the indexes
// shrink as fast as they grow. The sweep touches keys not named in KEYS,
// which a standalone Redis (and Sentinel) allows and Redis Cluster would
// not.
const luaIndex = luaIndexAt + `
local member, prefix, sweepBefore = ARGV[1], ARGV[2], ARGV[3]

local function unindex(m) unindexAt(KEYS[2], KEYS[3], m) end
local function index(px) indexAt(KEYS[2], KEYS[3], KEYS[1], member, px) end
local function sweep() sweepAt(KEYS[2], KEYS[3], prefix, sweepBefore) end
`

// luaIndexAt is luaIndex's work on any keys: kidx is the key index, eidx
// the expiry index; indexAt records the record at Redis key rkey (store
// key member) as written with PXAT px ('0': none): a record written
// already expired is gone, and so is its entry.
const luaIndexAt = `
local function unindexAt(kidx, eidx, m)
  redis.call('ZREM', kidx, m)
  redis.call('ZREM', eidx, m)
end

local function indexAt(kidx, eidx, rkey, m, px)
  if redis.call('EXISTS', rkey) == 0 then
    unindexAt(kidx, eidx, m)
    return
  end
  redis.call('ZADD', kidx, 0, m)
  if px == '0' then
    redis.call('ZREM', eidx, m)
  else
    redis.call('ZADD', eidx, px, m)
  end
end

local function sweepAt(kidx, eidx, prefix, sweepBefore)
  local dead = redis.call('ZRANGE', eidx, '-inf', '(' .. sweepBefore, 'BYSCORE', 'LIMIT', 0, 4)
  for _, m in ipairs(dead) do
    redis.call('DEL', prefix .. m)
    unindexAt(kidx, eidx, m)
  end
end
`

// putScript stores a record. ARGV[4] is the stored value, ARGV[5] its
// PXAT (0: none).
var putScript = goredis.NewScript(luaIndex + `
if ARGV[5] == '0' then
  redis.call('SET', KEYS[1], ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[4], 'PXAT', ARGV[5])
end
index(ARGV[5])
sweep()
return 1
`)

// deleteScript removes a record.
var deleteScript = goredis.NewScript(luaIndex + `
redis.call('DEL', KEYS[1])
unindex(member)
sweep()
return 1
`)

// deletePrefixScript removes up to ARGV[4] records whose keys are in the
// lexicographic range ARGV[1]..ARGV[2] of the key index KEYS[1], with
// their entries in the expiry index KEYS[2]. ARGV[3] is the key prefix.
// It returns how many it removed.
var deletePrefixScript = goredis.NewScript(`
local ms = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2], 'BYLEX', 'LIMIT', 0, tonumber(ARGV[4]))
if #ms == 0 then return 0 end
local keys = {}
for i, m in ipairs(ms) do keys[i] = ARGV[3] .. m end
redis.call('DEL', unpack(keys))
redis.call('ZREM', KEYS[1], unpack(ms))
redis.call('ZREM', KEYS[2], unpack(ms))
return #ms
`)

// incrScript adds a delta to a counter. ARGV[4] is the delta (8-byte
// big-endian two's complement), ARGV[5] and ARGV[6] the node's clock (Unix
// seconds and nanoseconds), ARGV[7] the header of a new counter (its
// expiry) and ARGV[8] its PXAT (0: none). A live counter keeps
// its header and its key's expiry (KEEPTTL). It returns the new value, 8
// bytes; overflow and a live value that is not 8 bytes are errors that
// change nothing.
//
// Lua numbers are doubles, which cannot hold every int64, so the sum is
// computed byte by byte with a carry, and overflow from the sign bits.
var incrScript = goredis.NewScript(luaRecord + luaIndex + `
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
local header = ARGV[7]
local old = string.rep('\0', 8)
local keep = false
if cur then
  local h, v, sec, nsec = parse(cur)
  if h == nil then return redis.error_reply('ERR mfa: malformed stored value') end
  if live(sec, nsec, tonumber(ARGV[5]), tonumber(ARGV[6])) then
    if #v ~= 8 then return redis.error_reply('ERR mfa: not a counter') end
    header, old, keep = h, v, true
  end
end
local new = add64(old, ARGV[4])
if new == nil then return redis.error_reply('ERR mfa: counter overflow') end
if keep then
  redis.call('SET', KEYS[1], header .. new, 'KEEPTTL')
  redis.call('ZADD', KEYS[2], 0, member)
else
  if ARGV[8] == '0' then
    redis.call('SET', KEYS[1], header .. new)
  else
    redis.call('SET', KEYS[1], header .. new, 'PXAT', ARGV[8])
  end
  index(ARGV[8])
end
sweep()
return new
`)

// casScript is the write half of Update: a compare-and-set on the whole
// stored value. ARGV[4] is "1" if the reader saw a stored value and
// ARGV[5] that value; ARGV[6] is "set" or "del"; ARGV[7] the new stored
// value and ARGV[8] its PXAT (0: none). It returns 1 when the key still
// held what the reader saw and the write was done, 0 when another writer
// came first. A value that is byte for byte what the reader saw gives the
// function the same input, so comparing values is as good as comparing
// versions.
var casScript = goredis.NewScript(luaIndex + `
local cur = redis.call('GET', KEYS[1])
if ARGV[4] == '1' then
  if cur ~= ARGV[5] then return 0 end
elseif cur then
  return 0
end
if ARGV[6] == 'del' then
  redis.call('DEL', KEYS[1])
  unindex(member)
else
  if ARGV[8] == '0' then
    redis.call('SET', KEYS[1], ARGV[7])
  else
    redis.call('SET', KEYS[1], ARGV[7], 'PXAT', ARGV[8])
  end
  index(ARGV[8])
end
sweep()
return 1
`)

// casManyScript is the write half of UpdateMany: a compare-and-set on the
// whole stored values of several records at once. KEYS[1] and KEYS[2] are
// the key index and the expiry index (see luaIndex), KEYS[2+i] the
// records' Redis keys. ARGV[1] is the key prefix, ARGV[2] the sweep bound,
// then six per record: its store key, "true" if the reader saw a stored
// value and ARGV the value, "keep", "set" or "del", the new stored value
// and its PXAT (0: none). It returns 1 when every record still held what
// the reader saw and the writes were done, 0 (and writes nothing) when
// another writer came first.
var casManyScript = goredis.NewScript(luaIndexAt + `
local n = #KEYS - 2
for i = 1, n do
  local a = 2 + (i - 1) * 6
  local cur = redis.call('GET', KEYS[2 + i])
  if ARGV[a + 2] == 'true' then
    if cur ~= ARGV[a + 3] then return 0 end
  elseif cur then
    return 0
  end
end
for i = 1, n do
  local a = 2 + (i - 1) * 6
  local key, member, op, px = KEYS[2 + i], ARGV[a + 1], ARGV[a + 4], ARGV[a + 6]
  if op == 'del' then
    redis.call('DEL', key)
    unindexAt(KEYS[1], KEYS[2], member)
  elseif op == 'set' then
    if px == '0' then
      redis.call('SET', key, ARGV[a + 5])
    else
      redis.call('SET', key, ARGV[a + 5], 'PXAT', px)
    end
    indexAt(KEYS[1], KEYS[2], key, member, px)
  end
end
sweepAt(KEYS[1], KEYS[2], ARGV[1], ARGV[2])
return 1
`)
