package caddymfa

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddymfa/caddy-mfa/storage"
)

// Store keys of the per-user indexes: one record per user that names the
// store IDs of their sessions or remembered devices. They replace the
// key-per-entry indexes usess/<user>/<id> and udev/<user>/<id>, which are
// still swept when a user's sessions or devices are all ended, so
// entries written before an upgrade are ended too.
const (
	keySessionIndex = "sidx/" // sidx/<user>: the store IDs of a user's sessions
	keyDeviceIndex  = "didx/" // didx/<user>: the store IDs of a user's remembered devices
)

// Caps of the per-user indexes. A user signing in more often than that
// within a session lifetime ends their oldest session: the index stays one
// small record, read and written whole, whatever the traffic.
const (
	maxUserSessions = 50
	maxUserDevices  = 20
)

// handleLen is the length of a handle: the first characters of a store
// ID (hex), enough to tell a user's sessions apart, shown on the account
// page, in the admin API and in audit lines instead of anything a cookie
// carries.
const handleLen = 16

// indexEntry is one session or device in a user's index: its store ID
// and when it expires at the latest.
type indexEntry struct {
	ID      string
	Expires time.Time
}

// The index record is binary, so a sign-in that rewrites a full index
// spends no time on JSON or time formatting: a version byte, then per
// entry, oldest first, the store ID (keyring.storeID, 20 bytes written
// as hex) and the expiry in Unix seconds, rounded up (8 bytes, big
// endian).
const (
	indexVersion  = 1
	indexIDLen    = 20
	indexEntryLen = indexIDLen + 8
)

// rawEntry is an index entry as the record holds it.
type rawEntry struct {
	id  [indexIDLen]byte
	exp int64 // Unix seconds
}

func (e rawEntry) entry() indexEntry {
	return indexEntry{ID: hex.EncodeToString(e.id[:]), Expires: time.Unix(e.exp, 0)}
}

// rawID is the binary form of a store ID.
func rawID(id string) (raw [indexIDLen]byte, ok bool) {
	if hex.DecodedLen(len(id)) != indexIDLen {
		return raw, false
	}
	_, err := hex.Decode(raw[:], []byte(id))
	return raw, err == nil
}

// decodeIndex reads an index record; room is left for one more entry.
func decodeIndex(b []byte) ([]rawEntry, error) {
	if len(b) == 0 || len(b) > maxRecord || b[0] != indexVersion || (len(b)-1)%indexEntryLen != 0 {
		return nil, errBadRecord
	}
	n := (len(b) - 1) / indexEntryLen
	out := make([]rawEntry, n, n+1)
	for i := range out {
		p := b[1+i*indexEntryLen:]
		copy(out[i].id[:], p[:indexIDLen])
		out[i].exp = int64(binary.BigEndian.Uint64(p[indexIDLen:indexEntryLen]))
	}
	return out, nil
}

// encodeIndex writes an index record.
func encodeIndex(es []rawEntry) []byte {
	b := make([]byte, 1, 1+len(es)*indexEntryLen)
	b[0] = indexVersion
	for _, e := range es {
		b = append(b, e.id[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(e.exp))
	}
	return b
}

// userIndex keeps a capped per-user index in one record per user. Every
// write is one atomic read-modify-write of that record that also drops
// the expired entries, so its size is bounded by max and no operation
// lists the store (issue 15's rule: no cost that grows with the store).
// It works on every Store, Badger and Redis alike.
type userIndex struct {
	store  storage.Store
	prefix string // keySessionIndex or keyDeviceIndex
	max    int
	now    func() time.Time
}

// add puts id (a store ID) in user's index until expires. When the index
// is full, the oldest entries leave it and are returned, for the caller
// to end: an entry that is not in the index could not be ended by the
// user or an administrator.
func (ix *userIndex) add(ctx context.Context, user, id string, expires time.Time) (evicted []string, err error) {
	if _, ok := rawID(id); !ok {
		return nil, fmt.Errorf("indexing %q: not a store ID", id)
	}
	err = ix.update(ctx, user, func(es []rawEntry) []rawEntry {
		es, evicted = ix.adding(es, id, expires)
		return es
	})
	return evicted, err
}

// adding returns the entries es with id (a checked store ID) added until
// expires, and the store IDs of the oldest entries it pushed out (add).
func (ix *userIndex) adding(es []rawEntry, id string, expires time.Time) (kept []rawEntry, evicted []string) {
	raw, _ := rawID(id)
	exp := expires.Unix()
	if expires.Nanosecond() > 0 {
		exp++
	}
	es = slices.DeleteFunc(es, func(e rawEntry) bool { return e.id == raw })
	if over := len(es) + 1 - ix.max; over > 0 {
		for _, e := range es[:over] {
			evicted = append(evicted, hex.EncodeToString(e.id[:]))
		}
		es = es[over:]
	}
	return append(es, rawEntry{id: raw, exp: exp}), evicted
}

// remove takes ids out of user's index.
func (ix *userIndex) remove(ctx context.Context, user string, ids ...string) error {
	raws := make([][indexIDLen]byte, 0, len(ids))
	for _, id := range ids {
		if raw, ok := rawID(id); ok {
			raws = append(raws, raw)
		}
	}
	return ix.update(ctx, user, func(es []rawEntry) []rawEntry {
		return slices.DeleteFunc(es, func(e rawEntry) bool { return slices.Contains(raws, e.id) })
	})
}

// entries returns the live entries of user's index, oldest first.
func (ix *userIndex) entries(ctx context.Context, user string) ([]indexEntry, error) {
	rec, err := ix.store.Get(ctx, ix.prefix+user)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	raw, err := decodeIndex(rec.Value)
	if err != nil {
		return nil, err
	}
	var out []indexEntry
	for _, e := range live(raw, ix.now()) {
		out = append(out, e.entry())
	}
	return out, nil
}

// take empties user's index in one atomic step and returns what it held,
// so an entry added meanwhile is either taken or stays indexed.
func (ix *userIndex) take(ctx context.Context, user string) ([]indexEntry, error) {
	var taken []indexEntry
	err := ix.store.Update(ctx, ix.prefix+user, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		taken = nil
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		raw, err := decodeIndex(cur.Value)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		for _, e := range raw {
			taken = append(taken, e.entry())
		}
		return nil, time.Time{}, storage.Delete, nil
	})
	return taken, err
}

// update applies fn to the live entries of user's index and writes the
// result, expiring with its last entry, or deletes the record when none
// is left.
func (ix *userIndex) update(ctx context.Context, user string, fn func([]rawEntry) []rawEntry) error {
	now := ix.now()
	return ix.store.Update(ctx, ix.prefix+user, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		c, err := ix.change(cur, found, now, fn)
		return c.Value, c.ExpiresAt, c.Op, err
	})
}

// change is the change update makes to the stored index cur.
func (ix *userIndex) change(cur storage.Record, found bool, now time.Time, fn func([]rawEntry) []rawEntry) (storage.Change, error) {
	var es []rawEntry
	if found {
		var err error
		if es, err = decodeIndex(cur.Value); err != nil {
			return storage.Change{}, err
		}
	}
	es = fn(live(es, now))
	if len(es) == 0 {
		if !found {
			return storage.Change{}, nil
		}
		return storage.Change{Op: storage.Delete}, nil
	}
	var last int64
	for _, e := range es {
		last = max(last, e.exp)
	}
	return storage.Change{Value: encodeIndex(es), ExpiresAt: time.Unix(last, 0), Op: storage.Write}, nil
}

// live keeps the entries that have not expired, in place.
func live(es []rawEntry, now time.Time) []rawEntry {
	return slices.DeleteFunc(es, func(e rawEntry) bool { return !now.Before(time.Unix(e.exp, 0)) })
}

// sweepLegacy returns the store IDs of an index kept the old way, one key
// per entry under prefix, and deletes that index.
func sweepLegacy(ctx context.Context, store storage.Store, prefix string) ([]string, error) {
	recs, err := store.List(ctx, prefix, 0, false)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	ids := make([]string, len(recs))
	for i, rec := range recs {
		ids[i] = strings.TrimPrefix(rec.Key, prefix)
	}
	return ids, store.DeletePrefix(ctx, prefix)
}

// handleOf is the handle of a store ID.
func handleOf(storeID string) string {
	if len(storeID) < handleLen {
		return storeID
	}
	return storeID[:handleLen]
}

// validHandle reports whether s is shaped like a handle (lower-case hex
// of handleLen), so a malformed one is refused rather than matched.
func validHandle(s string) bool {
	if len(s) != handleLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// maxUserAgent bounds the User-Agent kept with a session or device.
const maxUserAgent = 256

// origin is where a session or a remembered device was made: the
// browser's User-Agent (cut to maxUserAgent), the client address and,
// with geoip_db, its country.
type origin struct {
	UserAgent string `json:"ua,omitempty"`
	IP        string `json:"ip,omitempty"`
	Country   string `json:"cc,omitempty"`
}

// originOf is the origin of a request; country maps an address to its
// country ("" without geoip_db) and may be nil.
func originOf(r *http.Request, country func(string) string) origin {
	ua := r.Header.Get("User-Agent")
	if len(ua) > maxUserAgent {
		ua = strings.ToValidUTF8(ua[:maxUserAgent], "")
	}
	o := origin{UserAgent: ua, IP: clientIP(r)}
	if country != nil && o.IP != "" {
		o.Country = country(o.IP)
	}
	return o
}

// wireIndexes gives the sessions and devices their per-user indexes and
// the sessions the country lookup of the policy (geoip_db).
func (h *Handler) wireIndexes(clock func() time.Time) {
	h.sessions.index = &userIndex{store: h.store, prefix: keySessionIndex, max: maxUserSessions, now: clock}
	h.devices.index = &userIndex{store: h.store, prefix: keyDeviceIndex, max: maxUserDevices, now: clock}
	if h.policy != nil {
		h.sessions.country = h.policy.country
	}
}
