package caddymfa

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/storage"
)

// maxCachedSessions bounds the in-memory session cache: 2,048 entries a
// generation (sessionCache), the sessions of about a thousand browsers
// that each come back within a second, which is as long as an entry
// saves a store read. A cached session takes about 1.5 KiB.
const maxCachedSessions = 4096

// sessionRecheck is how long a cached session is trusted before the store
// is asked again: the bound on how long a revocation (sign-out, lockout,
// admin revoke, factor change) takes to reach another handler or, on a
// shared store such as Redis, another Caddy node. One store read per
// active session per second costs nothing on the hot path.
const sessionRecheck = time.Second

// cachedSession is a session as the hot path sees it. lastSeen moves in
// memory on every request; the store learns of it only when it has moved by
// more than a fraction of the idle timeout.
type cachedSession struct {
	session
	// userValue and methodValue hold User and Method as interface values,
	// made once, so setting the placeholders allocates nothing.
	userValue, methodValue any
	id                     string
	storeKey               string
	loadedAt               time.Time // when the store was last asked
	// admitted: this handler's config still admits the user; goodUntil:
	// until when (unix nanoseconds) the session's verifications satisfy
	// this handler's methods and max_age. Both are worked out in memory
	// when the session is loaded, so a request pays nothing for them
	// (SECURITY.md K50).
	admitted  bool
	goodUntil int64
	lastSeen  atomic.Int64 // unix nanoseconds
	persisted atomic.Int64 // lastSeen last written to the store
}

// sessionCache keeps recently used sessions in memory, so a protected
// request costs one cookie lookup and one map read. It is a sync.Map: the
// entries are read far more often than written, and reads then take no
// lock shared between cores.
//
// A cached entry saves the store read for sessionRecheck only; after
// that the next request reads the store again and puts the fresh entry
// back. So the cache needs the sessions of the last few seconds, not
// every session since the last start: it keeps two generations of
// entries, and a new generation starts when the current one is
// sessionCacheSpan old or holds half the entries allowed. An entry not
// put again in two generations is gone, so a sign-in storm, where each
// new session is used once, leaves a few seconds' worth in memory rather
// than up to the maximum; what an evicted entry held that the store does
// not (its last activity, by less than idle_timeout/8) is the same that
// the earlier start-over lost.
type sessionCache struct {
	gen atomic.Pointer[cacheGeneration]
	max int64 // entries in both generations
}

// sessionCacheSpan is how long a generation of the session cache takes
// new entries: an entry lives between one and two spans after it was last
// put.
const sessionCacheSpan = 2 * sessionRecheck

// cacheGeneration is the current generation of entries and the one
// before it.
type cacheGeneration struct {
	cur, prev *sync.Map    // cookie value → *cachedSession
	start     time.Time    // when cur began
	n         atomic.Int64 // entries put into cur
}

func newSessionCache(max int) *sessionCache {
	c := &sessionCache{max: int64(max)}
	c.gen.Store(&cacheGeneration{cur: new(sync.Map), prev: new(sync.Map)})
	return c
}

func (c *sessionCache) get(cookie string) *cachedSession {
	g := c.gen.Load()
	if v, ok := g.cur.Load(cookie); ok {
		return v.(*cachedSession)
	}
	if v, ok := g.prev.Load(cookie); ok {
		return v.(*cachedSession)
	}
	return nil
}

// put caches s, loaded from the store at s.loadedAt.
func (c *sessionCache) put(cookie string, s *cachedSession) {
	g := c.gen.Load()
	if g.n.Add(1) > c.max/2 || s.loadedAt.Sub(g.start) >= sessionCacheSpan || s.loadedAt.Before(g.start) {
		next := &cacheGeneration{cur: new(sync.Map), prev: g.cur, start: s.loadedAt}
		next.n.Store(1)
		if !c.gen.CompareAndSwap(g, next) {
			next = c.gen.Load()
		}
		g = next
	}
	g.cur.Store(cookie, s)
	g.prev.Delete(cookie) // replaced by the entry in cur
}

func (c *sessionCache) remove(cookie string) {
	g := c.gen.Load()
	g.cur.Delete(cookie)
	g.prev.Delete(cookie)
}

// removeWhere drops the entries for which drop is true.
func (c *sessionCache) removeWhere(drop func(*cachedSession) bool) {
	g := c.gen.Load()
	for _, m := range []*sync.Map{g.cur, g.prev} {
		m.Range(func(k, v any) bool {
			if drop(v.(*cachedSession)) {
				m.Delete(k)
			}
			return true
		})
	}
}

// removeStoreKey drops the cached entries of one session, named by its
// store key: a session ended by ID takes effect at the next request on
// this node, as on the others within sessionRecheck.
func (c *sessionCache) removeStoreKey(key string) {
	c.removeWhere(func(s *cachedSession) bool { return s.storeKey == key })
}

// removeUser drops every cached session of a user.
func (c *sessionCache) removeUser(user string) {
	c.removeWhere(func(s *cachedSession) bool { return s.User == user })
}

// sessionIDLen is the length of a session ID in bytes; a session cookie
// carries the ID and a 16-byte tag.
const sessionIDLen = 32

// sessions owns the sessions (sess/<id hash>) and their per-user index
// (sidx/<user>, sessionindex.go): it makes, checks, ends and revokes
// them, and keeps the ones in use in memory for the hot path. It sees
// cookie values, never requests.
type sessions struct {
	realm  *realm
	gate   *gate
	store  storage.Store
	keys   keyring
	now    func() time.Time
	logger *zap.Logger
	cache  *sessionCache
	ttl    time.Duration // absolute lifetime
	idle   time.Duration // idle timeout
	index  *userIndex
	// country maps a client address to its country, "" without
	// geoip_db; nil in tests.
	country func(ip string) string
}

// cookieValue signs a session ID for the cookie, bound to the realm.
func (ss *sessions) cookieValue(id []byte) string {
	var tag [16]byte
	ss.keys.sessionTag(&tag, ss.realm.name, id)
	// Joined and encoded on the stack: the one allocation is the value.
	var raw [sessionIDLen + len(tag)]byte
	var text [(len(raw)*8 + 5) / 6]byte
	if len(id) != sessionIDLen {
		return base64.RawURLEncoding.EncodeToString(append(append([]byte{}, id...), tag[:]...))
	}
	copy(raw[copy(raw[:], id):], tag[:])
	base64.RawURLEncoding.Encode(text[:], raw[:])
	return string(text[:])
}

// idFromCookie returns the session ID of a well-formed, correctly signed
// cookie value.
func (ss *sessions) idFromCookie(v string) (string, bool) {
	if base64.RawURLEncoding.DecodedLen(len(v)) != sessionIDLen+16 {
		return "", false
	}
	var buf [sessionIDLen + 16]byte
	n, err := base64.RawURLEncoding.Decode(buf[:], []byte(v))
	if err != nil || n != len(buf) {
		return "", false
	}
	var want [16]byte
	ss.keys.sessionTag(&want, ss.realm.name, buf[:sessionIDLen])
	if subtle.ConstantTimeCompare(want[:], buf[sessionIDLen:]) != 1 {
		return "", false
	}
	return string(buf[:sessionIDLen]), true
}

// requestHost is the host the session is bound to: Host without its port,
// lower case.
func requestHost(r *http.Request) string {
	return strings.ToLower(hostOnly(r.Host))
}

// hostOnly strips the port from a Host header value without allocating.
func hostOnly(host string) string {
	if strings.HasPrefix(host, "[") {
		if i := strings.IndexByte(host, ']'); i > 0 {
			return host[1:i]
		}
		return host
	}
	if i := strings.IndexByte(host, ':'); i >= 0 && strings.Count(host, ":") == 1 {
		return host[:i]
	}
	return host
}

// check returns the session of a cookie value when it is valid for the
// first-factor user ff on host (a Host header value): signed cookie for
// this realm, known to the store, made in this realm, not expired, not
// idle, a host the realm covers, same first factor, a user this handler
// still admits (SECURITY.md D24, E27, E29, K49, K50).
func (ss *sessions) check(ctx context.Context, v, ff, host string) (*cachedSession, bool) {
	s, ok, _ := ss.checkErr(ctx, v, ff, host)
	return s, ok
}

// checkErr is check, and also returns the store error that made it deny,
// so the protected path can answer 503 rather than ask a signed-in user to
// sign in again while the store is down.
func (ss *sessions) checkErr(ctx context.Context, v, ff, host string) (*cachedSession, bool, error) {
	s, ok, _, err := ss.checkStep(ctx, v, ff, host)
	return s, ok, err
}

// checkStep is checkErr, and also reports whether the session, valid
// here, falls short of this handler's methods or max_age: the request
// then needs a step-up rather than a sign-in.
func (ss *sessions) checkStep(ctx context.Context, v, ff, host string) (s *cachedSession, ok, short bool, err error) {
	if v == "" {
		return nil, false, false, nil
	}
	// The cache is keyed by the exact cookie value, and only values whose
	// signature was checked get in: a hit needs no HMAC. An entry is
	// checked against the store again after sessionRecheck, so a session
	// revoked by another handler on the same store ends within that time.
	now := ss.now()
	s = ss.cache.get(v)
	if s == nil || now.Sub(s.loadedAt) >= sessionRecheck {
		id := ""
		if s != nil {
			id = s.id
		} else if id, ok = ss.idFromCookie(v); !ok {
			return nil, false, false, nil
		}
		fresh, err := ss.load(ctx, id)
		if err != nil {
			ss.cache.remove(v)
			if errors.Is(err, storage.ErrNotFound) {
				return nil, false, false, nil
			}
			ss.logger.Error("loading session; denying", zap.Error(err))
			return nil, false, false, err
		}
		if s != nil {
			fresh.lastSeen.Store(max(fresh.lastSeen.Load(), s.lastSeen.Load()))
			fresh.persisted.Store(max(fresh.persisted.Load(), s.persisted.Load()))
		}
		fresh.loadedAt = now
		s = fresh
		ss.cache.put(v, s)
	}
	last := time.Unix(0, s.lastSeen.Load())
	if !now.Before(s.Expires) || now.Sub(last) >= ss.idle {
		ss.cache.remove(v)
		return nil, false, false, nil
	}
	if s.FirstFactor != ff || !s.admitted || !ss.realm.covers(host, s.Host) {
		return nil, false, false, nil
	}
	if now.Sub(last) > time.Second {
		// Written at most once a second, so parallel requests of one
		// session do not fight over the cache line.
		s.lastSeen.Store(now.UnixNano())
	}
	if now.Sub(time.Unix(0, s.persisted.Load())) > ss.idle/8 {
		ss.touch(ctx, s, now)
	}
	return s, true, now.UnixNano() >= s.goodUntil, nil
}

func (ss *sessions) load(ctx context.Context, id string) (*cachedSession, error) {
	key := keySession + ss.keys.storeID(id)
	rec, err := ss.store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	sess, err := decodeRecord[session](rec.Value)
	if err != nil {
		return nil, err
	}
	if sess.Realm != ss.realm.name {
		// Another realm's session, under a key of this one: only a
		// forged or copied store could do that. Absent, either way.
		return nil, storage.ErrNotFound
	}
	return ss.cached(sess, id, key), nil
}

// cached is the hot path's form of the stored session sess, whose ID is
// id, at key.
func (ss *sessions) cached(sess session, id, key string) *cachedSession {
	s := &cachedSession{session: sess, id: id, storeKey: key, userValue: sess.User, methodValue: sess.Method}
	s.admitted = ss.gate.admits(&sess)
	s.goodUntil = ss.gate.goodUntil(&sess)
	s.lastSeen.Store(sess.LastSeen.UnixNano())
	s.persisted.Store(sess.LastSeen.UnixNano())
	return s
}

// touch records activity in the store, at most every idle/8, so the idle
// timeout survives a restart without a write per request.
func (ss *sessions) touch(ctx context.Context, s *cachedSession, now time.Time) {
	s.persisted.Store(now.UnixNano())
	if err := ss.update(ctx, s.storeKey, func(rec *session) { rec.LastSeen = now }); err != nil {
		ss.logger.Warn("recording session activity", zap.Error(err))
	}
}

// create stores a fresh session (always a new ID: SECURITY.md E28) in
// the realm for user, who passed method after the first factor ff, bound
// to host; it returns the cookie value and when the session expires.
func (ss *sessions) create(ctx context.Context, ff, user, method, host string) (string, time.Time, error) {
	return ss.createFrom(ctx, ff, user, method, host, origin{}, "", nil)
}

// createFrom is create for a browser of origin o that holds the
// remembered device device (its store ID, "" for none); the verification
// times of prev, a session of the same user this one replaces (a
// step-up), carry over.
func (ss *sessions) createFrom(ctx context.Context, ff, user, method, host string, o origin, device string, prev *session) (string, time.Time, error) {
	st, err := ss.prepare(ff, user, method, host, o, device, prev)
	if err != nil {
		return "", time.Time{}, err
	}
	if err := ss.write(ctx, st); err != nil {
		return "", time.Time{}, err
	}
	return ss.started(ctx, st)
}

// sessionStart is a session made ready before it is written: its fresh
// ID and its record. sessions.createFrom writes it on its own; the check
// of a sign-in's code writes it in its own store operation when the code
// is right (verifier.guarded), so a sign-in by code writes once.
type sessionStart struct {
	ss      *sessions
	raw     []byte // the session ID
	rec     session
	storeID string
	// old is the cookie value of the session of the same user that the
	// request held and this one replaces (newSessionCookie), or "".
	old string
	// evicted are the store IDs of the oldest sessions of the user that
	// the index dropped to make room (changes).
	evicted []string
}

// prepare makes a session ready for createFrom's arguments; nothing is
// written yet.
func (ss *sessions) prepare(ff, user, method, host string, o origin, device string, prev *session) (*sessionStart, error) {
	raw := make([]byte, sessionIDLen)
	if _, err := randRead(raw); err != nil {
		return nil, err
	}
	now := ss.now()
	return &sessionStart{
		ss:      ss,
		raw:     raw,
		storeID: ss.keys.storeID(string(raw)),
		rec: session{
			Realm:       ss.realm.name,
			FirstFactor: ff,
			User:        user,
			Method:      method,
			Host:        host,
			Created:     now,
			Expires:     now.Add(ss.ttl),
			LastSeen:    now,
			origin:      o,
			Device:      device,
			Verified:    verifiedAfter(prev, ff, user, method, now),
		},
	}, nil
}

// keys are the store keys that writing the session changes: the session
// and the user's index of sessions. They are written in one store
// operation: no session exists that the index (and so the user's "sign
// out everywhere", a lockout, an admin revoke) misses.
func (st *sessionStart) keys() []string {
	return []string{keySession + st.storeID, st.ss.index.prefix + st.rec.User}
}

// changes writes the session into the current records of its keys, as an
// UpdateManyFunc: the session, and its entry in the index, which drops
// the user's oldest sessions beyond the cap (evicted).
func (st *sessionStart) changes(cur []storage.Record, found []bool) ([]storage.Change, error) {
	st.evicted = nil
	b, err := encodeRecord(st.rec)
	if err != nil {
		return nil, err
	}
	index, err := st.ss.index.change(cur[1], found[1], st.ss.index.now(), func(es []rawEntry) []rawEntry {
		es, st.evicted = st.ss.index.adding(es, st.storeID, st.rec.Expires)
		return es
	})
	return []storage.Change{{Value: b, ExpiresAt: st.rec.Expires, Op: storage.Write}, index}, err
}

// write stores the session st on its own.
func (ss *sessions) write(ctx context.Context, st *sessionStart) error {
	return ss.store.UpdateMany(ctx, st.keys(), st.changes)
}

// started follows the write of a session: the sessions the index dropped
// end, and the new one goes in the cache. It returns the cookie value and
// when the session expires.
func (ss *sessions) started(ctx context.Context, st *sessionStart) (string, time.Time, error) {
	for _, old := range st.evicted {
		// Another node that has it cached refuses it within
		// sessionRecheck; this one at once.
		ss.cache.removeStoreKey(keySession + old)
		if err := ss.store.Delete(ctx, keySession+old); err != nil {
			return "", time.Time{}, err
		}
	}
	// The browser's next request brings the session back: it finds it in
	// memory, as it would after a first load, rather than reading the
	// record just written.
	v := ss.cookieValue(st.raw)
	c := ss.cached(st.rec, string(st.raw), keySession+st.storeID)
	c.loadedAt = st.rec.Created
	ss.cache.put(v, c)
	return v, st.rec.Expires, nil
}

// end revokes the session of a cookie value, if any, server-side, and
// returns its user.
func (ss *sessions) end(ctx context.Context, v string) (user string, err error) {
	id, ok := ss.idFromCookie(v)
	if !ok {
		return "", nil
	}
	ss.cache.remove(v)
	storeID := ss.keys.storeID(id)
	rec, err := ss.store.Get(ctx, keySession+storeID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if s, err := decodeRecord[session](rec.Value); err == nil {
		user = s.User
		_ = ss.index.remove(ctx, user, storeID)
	}
	return user, ss.store.Delete(ctx, keySession+storeID)
}

// revokeUser ends every session of a user: lockout, factor changes and
// admin revoke (SECURITY.md E30). It returns how many there were.
func (ss *sessions) revokeUser(ctx context.Context, user string) (int, error) {
	ss.cache.removeUser(user)
	taken, err := ss.index.take(ctx, user)
	if err != nil {
		return 0, err
	}
	ids := make([]string, 0, len(taken))
	for _, e := range taken {
		ids = append(ids, e.ID)
	}
	legacy, err := sweepLegacy(ctx, ss.store, keyUserSess+user+"/")
	if err != nil {
		return 0, err
	}
	ids = append(ids, legacy...)
	for _, id := range ids {
		if err := ss.store.Delete(ctx, keySession+id); err != nil {
			return len(ids), err
		}
	}
	return len(ids), nil
}

// listedSession is a session as a list of a user's sessions shows it,
// with its store ID.
type listedSession struct {
	session
	storeID string
}

// ofUser lists a user's sessions, oldest first (account page, admin
// API); one ended meanwhile, or idle for longer than the idle timeout
// (give or take how often activity is written), is left out.
func (ss *sessions) ofUser(ctx context.Context, user string) ([]listedSession, error) {
	index, err := ss.index.entries(ctx, user)
	if err != nil {
		return nil, err
	}
	now := ss.now()
	var out []listedSession
	for _, e := range index {
		sr, err := ss.store.Get(ctx, keySession+e.ID)
		if errors.Is(err, storage.ErrNotFound) {
			continue // ended meanwhile
		}
		if err != nil {
			return nil, err
		}
		s, err := decodeRecord[session](sr.Value)
		if err != nil || now.Sub(s.LastSeen) >= ss.idle+ss.idle/8 || !now.Before(s.Expires) {
			continue
		}
		out = append(out, listedSession{session: s, storeID: e.ID})
	}
	return out, nil
}

// endID ends one of user's sessions by its store ID, server-side; on the
// other nodes it ends within sessionRecheck (SECURITY.md M59).
func (ss *sessions) endID(ctx context.Context, user, storeID string) error {
	ss.cache.removeStoreKey(keySession + storeID)
	if err := ss.store.Delete(ctx, keySession+storeID); err != nil {
		return err
	}
	return ss.index.remove(ctx, user, storeID)
}

// linkDevice records in the session of a cookie value the remembered
// device (its store ID) that the browser was just given, so ending the
// one ends the other.
func (ss *sessions) linkDevice(ctx context.Context, v, device string) error {
	id, ok := ss.idFromCookie(v)
	if !ok {
		return nil
	}
	return ss.update(ctx, keySession+ss.keys.storeID(id), func(rec *session) { rec.Device = device })
}

// update changes the stored session at key, if it is still there, in
// one atomic step; its expiry stays.
func (ss *sessions) update(ctx context.Context, key string, fn func(*session)) error {
	return ss.store.Update(ctx, key, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		rec, err := decodeRecord[session](cur.Value)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		fn(&rec)
		b, err := encodeRecord(rec)
		return b, cur.ExpiresAt, storage.Write, err
	})
}

// newSessionCookie starts a session for the request's host and returns
// its cookie. A session of the same user the request already holds in
// this realm is replaced: its verification times carry over (step-up)
// and it ends server-side, so no older bearer outlives the new one.
func newSessionCookie(r *http.Request, ss *sessions, ff, user, method string) (*http.Cookie, error) {
	st, err := prepareSession(r, ss, ff, user, method)
	if err != nil {
		return nil, err
	}
	if err := ss.write(r.Context(), st); err != nil {
		return nil, err
	}
	return sessionCookie(r, ss, st)
}

// prepareSession is the first half of newSessionCookie: the session made
// ready for the request, nothing written.
func prepareSession(r *http.Request, ss *sessions, ff, user, method string) (*sessionStart, error) {
	var prev *session
	old := ss.realm.read(r, cookieSession)
	if s, ok := ss.check(r.Context(), old, ff, r.Host); ok && s.User == user {
		prev = &s.session
	} else {
		old = ""
	}
	st, err := ss.prepare(ff, user, method, requestHost(r), originOf(r, ss.country), requestDevice(r, ss.realm, ss.keys), prev)
	if err != nil {
		return nil, err
	}
	st.old = old
	return st, nil
}

// sessionCookie is the second half of newSessionCookie, once the session
// st is written: the session it replaces ends, and the cookie.
func sessionCookie(r *http.Request, ss *sessions, st *sessionStart) (*http.Cookie, error) {
	ctx := r.Context()
	v, expires, err := ss.started(ctx, st)
	if err != nil {
		return nil, err
	}
	if st.old != "" {
		if _, err := ss.end(ctx, st.old); err != nil {
			ss.logger.Warn("ending the session a new one replaces", zap.Error(err))
		}
	}
	return ss.realm.cookie(r, cookieSession, v, expires), nil
}

// requestSession returns the request's session when it is valid for the
// first-factor user ff.
func requestSession(r *http.Request, ss *sessions, ff string) (*cachedSession, bool) {
	return ss.check(r.Context(), ss.realm.read(r, cookieSession), ff, r.Host)
}

// requestSessionID returns the ID of the request's session cookie, if it
// carries a well-formed, signed one; CSRF tokens of signed-in pages are
// bound to it.
func requestSessionID(r *http.Request, ss *sessions) string {
	id, _ := ss.idFromCookie(ss.realm.read(r, cookieSession))
	return id
}
