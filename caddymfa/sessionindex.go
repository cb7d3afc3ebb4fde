package caddymfa

import (
	"context"
	"errors"
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
	ID      string    `json:"i"`
	Expires time.Time `json:"e"`
}

// indexRecord is the value of a per-user index, oldest entry first.
type indexRecord struct {
	Entries []indexEntry `json:"s"`
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

// add puts id in user's index until expires. When the index is full, the
// oldest entries leave it and are returned, for the caller to end: an
// entry that is not in the index could not be ended by the user or an
// administrator.
func (ix *userIndex) add(ctx context.Context, user, id string, expires time.Time) (evicted []string, err error) {
	now := ix.now()
	err = ix.update(ctx, user, func(es []indexEntry) []indexEntry {
		evicted = nil
		es = slices.DeleteFunc(es, func(e indexEntry) bool { return e.ID == id })
		if over := len(es) + 1 - ix.max; over > 0 {
			for _, e := range es[:over] {
				evicted = append(evicted, e.ID)
			}
			es = es[over:]
		}
		return append(es, indexEntry{ID: id, Expires: expires})
	}, now)
	return evicted, err
}

// remove takes ids out of user's index.
func (ix *userIndex) remove(ctx context.Context, user string, ids ...string) error {
	return ix.update(ctx, user, func(es []indexEntry) []indexEntry {
		return slices.DeleteFunc(es, func(e indexEntry) bool { return slices.Contains(ids, e.ID) })
	}, ix.now())
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
	idx, err := decodeRecord[indexRecord](rec.Value)
	if err != nil {
		return nil, err
	}
	return live(idx.Entries, ix.now()), nil
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
		idx, err := decodeRecord[indexRecord](cur.Value)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		taken = idx.Entries
		return nil, time.Time{}, storage.Delete, nil
	})
	return taken, err
}

// update applies fn to the live entries of user's index and writes the
// result, expiring with its last entry, or deletes the record when none
// is left.
func (ix *userIndex) update(ctx context.Context, user string, fn func([]indexEntry) []indexEntry, now time.Time) error {
	return ix.store.Update(ctx, ix.prefix+user, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		var idx indexRecord
		if found {
			var err error
			if idx, err = decodeRecord[indexRecord](cur.Value); err != nil {
				return nil, time.Time{}, storage.Keep, err
			}
		}
		es := fn(live(idx.Entries, now))
		if len(es) == 0 {
			if !found {
				return nil, time.Time{}, storage.Keep, nil
			}
			return nil, time.Time{}, storage.Delete, nil
		}
		var expires time.Time
		for _, e := range es {
			if e.Expires.After(expires) {
				expires = e.Expires
			}
		}
		b, err := encodeRecord(indexRecord{Entries: es})
		return b, expires, storage.Write, err
	})
}

// live returns the entries that have not expired, in a new slice.
func live(es []indexEntry, now time.Time) []indexEntry {
	out := make([]indexEntry, 0, len(es)+1)
	for _, e := range es {
		if now.Before(e.Expires) {
			out = append(out, e)
		}
	}
	return out
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
