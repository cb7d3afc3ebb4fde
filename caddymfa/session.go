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

// maxCachedSessions bounds the in-memory session cache.
const maxCachedSessions = 10000

// sessionRecheck is how long a cached session is trusted before the store
// is asked again.
const sessionRecheck = 5 * time.Second

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
	loadedAt               time.Time    // when the store was last asked
	lastSeen               atomic.Int64 // unix nanoseconds
	persisted              atomic.Int64 // lastSeen last written to the store
}

// sessionCache keeps recently used sessions in memory, so a protected
// request costs one cookie lookup and one map read. It is a sync.Map: the
// entries are read far more often than written, and reads then take no
// lock shared between cores.
type sessionCache struct {
	m   atomic.Pointer[sync.Map] // cookie value → *cachedSession
	n   atomic.Int64             // entries added since the map was new
	max int64
}

func newSessionCache(max int) *sessionCache {
	c := &sessionCache{max: int64(max)}
	c.m.Store(new(sync.Map))
	return c
}

func (c *sessionCache) get(cookie string) *cachedSession {
	if v, ok := c.m.Load().Load(cookie); ok {
		return v.(*cachedSession)
	}
	return nil
}

func (c *sessionCache) put(cookie string, s *cachedSession) {
	if c.n.Add(1) > c.max {
		// Starting over is cheap and safe: the store is the truth.
		c.m.Store(new(sync.Map))
		c.n.Store(1)
	}
	c.m.Load().Store(cookie, s)
}

func (c *sessionCache) remove(cookie string) {
	c.m.Load().Delete(cookie)
}

// removeUser drops every cached session of a user.
func (c *sessionCache) removeUser(user string) {
	c.m.Load().Range(func(k, v any) bool {
		if v.(*cachedSession).User == user {
			c.m.Load().Delete(k)
		}
		return true
	})
}

// sessionIDLen is the decoded length of a session cookie: a 32-byte ID
// and a 16-byte tag.
const sessionIDLen = 32

// sessionCookieValue signs a session ID for the cookie.
func (h *Handler) sessionCookieValue(id []byte) string {
	var tag [16]byte
	h.keys.sessionTag(&tag, id)
	return base64.RawURLEncoding.EncodeToString(append(append([]byte{}, id...), tag[:]...))
}

// sessionIDFromCookie returns the session ID of a well-formed, correctly
// signed cookie value.
func (h *Handler) sessionIDFromCookie(v string) (string, bool) {
	if base64.RawURLEncoding.DecodedLen(len(v)) != sessionIDLen+16 {
		return "", false
	}
	var buf [sessionIDLen + 16]byte
	n, err := base64.RawURLEncoding.Decode(buf[:], []byte(v))
	if err != nil || n != len(buf) {
		return "", false
	}
	var want [16]byte
	h.keys.sessionTag(&want, buf[:sessionIDLen])
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

// validSession returns the request's session when it is valid for the
// first-factor user ff: signed cookie, known to the store, not expired,
// not idle, same host, same first factor (SECURITY.md D24, E27, E29).
func (h *Handler) validSession(r *http.Request, ff string) (*cachedSession, bool) {
	v := readCookie(r, cookieName(r, sessionCookieName))
	if v == "" {
		return nil, false
	}
	var ok bool
	// The cache is keyed by the exact cookie value, and only values whose
	// signature was checked get in: a hit needs no HMAC. An entry is
	// checked against the store again after sessionRecheck, so a session
	// revoked by another handler on the same store ends within that time.
	now := h.now()
	s := h.sessions.get(v)
	if s == nil || now.Sub(s.loadedAt) >= sessionRecheck {
		id := ""
		if s != nil {
			id = s.id
		} else if id, ok = h.sessionIDFromCookie(v); !ok {
			return nil, false
		}
		fresh, err := h.loadSession(r.Context(), id)
		if err != nil {
			h.sessions.remove(v)
			if !errors.Is(err, storage.ErrNotFound) {
				h.logger.Error("loading session; denying", zap.Error(err))
			}
			return nil, false
		}
		if s != nil {
			fresh.lastSeen.Store(max(fresh.lastSeen.Load(), s.lastSeen.Load()))
			fresh.persisted.Store(max(fresh.persisted.Load(), s.persisted.Load()))
		}
		fresh.loadedAt = now
		s = fresh
		h.sessions.put(v, s)
	}
	idle := time.Duration(h.IdleTimeout)
	last := time.Unix(0, s.lastSeen.Load())
	if !now.Before(s.Expires) || now.Sub(last) >= idle {
		h.sessions.remove(v)
		return nil, false
	}
	if s.FirstFactor != ff || !strings.EqualFold(hostOnly(r.Host), s.Host) {
		return nil, false
	}
	if now.Sub(last) > time.Second {
		// Written at most once a second, so parallel requests of one
		// session do not fight over the cache line.
		s.lastSeen.Store(now.UnixNano())
	}
	if now.Sub(time.Unix(0, s.persisted.Load())) > idle/8 {
		h.touchSession(r.Context(), s, now)
	}
	return s, true
}

func (h *Handler) loadSession(ctx context.Context, id string) (*cachedSession, error) {
	key := keySession + h.keys.storeID(id)
	rec, err := h.store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	sess, err := decodeRecord[session](rec.Value)
	if err != nil {
		return nil, err
	}
	s := &cachedSession{session: sess, id: id, storeKey: key, userValue: sess.User, methodValue: sess.Method}
	s.lastSeen.Store(sess.LastSeen.UnixNano())
	s.persisted.Store(sess.LastSeen.UnixNano())
	return s, nil
}

// touchSession records activity in the store, at most every idle/8, so
// the idle timeout survives a restart without a write per request.
func (h *Handler) touchSession(ctx context.Context, s *cachedSession, now time.Time) {
	s.persisted.Store(now.UnixNano())
	err := h.store.Update(ctx, s.storeKey, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		rec, err := decodeRecord[session](cur.Value)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		rec.LastSeen = now
		b, err := encodeRecord(rec)
		return b, cur.ExpiresAt, storage.Write, err
	})
	if err != nil {
		h.logger.Warn("recording session activity", zap.Error(err))
	}
}

// newSession stores a fresh session (always a new ID: SECURITY.md E28) and
// returns its cookie.
func (h *Handler) newSession(r *http.Request, ff, user, method string) (*http.Cookie, error) {
	raw := make([]byte, sessionIDLen)
	if _, err := randRead(raw); err != nil {
		return nil, err
	}
	id := string(raw)
	now := h.now()
	s := session{
		FirstFactor: ff,
		User:        user,
		Method:      method,
		Host:        requestHost(r),
		Created:     now,
		Expires:     now.Add(time.Duration(h.SessionTTL)),
		LastSeen:    now,
	}
	b, err := encodeRecord(s)
	if err != nil {
		return nil, err
	}
	storeID := h.keys.storeID(id)
	if err := h.store.Put(r.Context(), keySession+storeID, b, s.Expires, false); err != nil {
		return nil, err
	}
	if err := h.store.Put(r.Context(), keyUserSess+user+"/"+storeID, nil, s.Expires, false); err != nil {
		return nil, err
	}
	return newCookie(r, sessionCookieName, h.sessionCookieValue(raw), s.Expires), nil
}

// endSession revokes the request's session, if any, server-side.
func (h *Handler) endSession(r *http.Request) (user string, err error) {
	v := readCookie(r, cookieName(r, sessionCookieName))
	id, ok := h.sessionIDFromCookie(v)
	if !ok {
		return "", nil
	}
	h.sessions.remove(v)
	storeID := h.keys.storeID(id)
	rec, err := h.store.Get(r.Context(), keySession+storeID)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if s, err := decodeRecord[session](rec.Value); err == nil {
		user = s.User
		_ = h.store.Delete(r.Context(), keyUserSess+user+"/"+storeID)
	}
	return user, h.store.Delete(r.Context(), keySession+storeID)
}

// revokeUserSessions ends every session of a user: lockout, factor
// changes and admin revoke (SECURITY.md E30).
func (h *Handler) revokeUserSessions(ctx context.Context, user string) error {
	h.sessions.removeUser(user)
	prefix := keyUserSess + user + "/"
	recs, err := h.store.List(ctx, prefix, 0, false)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if err := h.store.Delete(ctx, keySession+strings.TrimPrefix(rec.Key, prefix)); err != nil {
			return err
		}
	}
	return h.store.DeletePrefix(ctx, prefix)
}
