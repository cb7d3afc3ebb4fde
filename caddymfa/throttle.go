package caddymfa

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/storage"
)

// throttledError says a cap was hit and when to try again.
type throttledError struct {
	scope      string
	retryAfter time.Duration
}

func (e *throttledError) Error() string {
	return fmt.Sprintf("throttled by %s cap; retry after %s", e.scope, e.retryAfter)
}

// windowCap is one fixed-window counter.
type windowCap struct {
	scope  string // names the cap in logs
	key    string
	limit  int
	window time.Duration
}

// checkSendCaps counts one send against every cap that applies (method
// per hour and per 5 minutes, client IP, user, destination) and the
// per-destination cooldown (SECURITY.md I39), and the extra caps (the
// per-country cap of SMS, against SMS pumping). It counts before it
// checks, so concurrent requests cannot overshoot a cap.
func (h *Handler) checkSendCaps(ctx context.Context, method string, t *authenticators.Throttle, ip, user, destKey string, extra ...windowCap) error {
	now := h.now()
	caps := append([]windowCap{
		{"global_hour", "h/" + method, t.PerHour, time.Hour},
		{"global_5m", "5m/" + method, t.Per5m, 5 * time.Minute},
		{"ip", "ip/" + method + "/" + ip, t.PerIPPerHour, time.Hour},
		{"user", "user/" + method + "/" + user, t.PerUserPerHour, time.Hour},
		{"destination", "dest/" + destKey, t.PerDestinationPerHour, time.Hour},
	}, extra...)
	for _, c := range caps {
		if c.limit <= 0 {
			continue
		}
		start := now.Truncate(c.window)
		end := start.Add(c.window)
		key := keyThrottle + c.key + "/" + strconv.FormatInt(start.Unix(), 10)
		n, err := h.store.Incr(ctx, key, 1, end)
		if err != nil {
			return fmt.Errorf("counting %s throttle: %w", c.scope, err)
		}
		if n > int64(c.limit) {
			h.metrics.throttle(c.scope)
			return &throttledError{scope: c.scope, retryAfter: end.Sub(now)}
		}
	}
	if cool := time.Duration(t.Cooldown); cool > 0 {
		var wait time.Duration
		err := h.store.Update(ctx, keyThrottle+"cool/"+destKey, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
			if found && now.Before(cur.ExpiresAt) {
				wait = cur.ExpiresAt.Sub(now)
				return nil, time.Time{}, storage.Keep, nil
			}
			return []byte{1}, now.Add(cool), storage.Write, nil
		})
		if err != nil {
			return fmt.Errorf("checking cooldown: %w", err)
		}
		if wait > 0 {
			h.metrics.throttle("cooldown")
			return &throttledError{scope: "cooldown", retryAfter: wait}
		}
	}
	return nil
}

// lockRecord counts a user's consecutive failures.
type lockRecord struct {
	Fails       int       `json:"f"`
	LockedUntil time.Time `json:"l,omitempty"`
}

// countAttempt counts a verification attempt as a failure before its code
// is compared, in one atomic step, and reports whether the user is locked
// (then the code must not be compared at all) and whether this attempt
// locked them. A success later clears the count (clearFailures).
func (h *Handler) countAttempt(ctx context.Context, user string) (locked, justLocked bool, err error) {
	now := h.now()
	window := time.Duration(h.Lockout.Window)
	err = h.store.Update(ctx, keyLockout+user, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		locked, justLocked = false, false
		var rec lockRecord
		if found {
			var derr error
			if rec, derr = decodeRecord[lockRecord](cur.Value); derr != nil {
				return nil, time.Time{}, storage.Keep, derr
			}
		}
		if now.Before(rec.LockedUntil) {
			locked = true
			return nil, time.Time{}, storage.Keep, nil
		}
		if !rec.LockedUntil.IsZero() {
			rec = lockRecord{} // an expired lock starts a fresh count
		}
		rec.Fails++
		if rec.Fails > h.Lockout.Failures {
			rec.LockedUntil = now.Add(window)
			locked, justLocked = true, true
		}
		b, err := encodeRecord(rec)
		return b, now.Add(window), storage.Write, err
	})
	return locked, justLocked, err
}

// clearFailures resets the consecutive-failure count after a success.
func (h *Handler) clearFailures(ctx context.Context, user string) error {
	return h.store.Update(ctx, keyLockout+user, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		rec, err := decodeRecord[lockRecord](cur.Value)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		if h.now().Before(rec.LockedUntil) {
			return nil, time.Time{}, storage.Keep, nil // a lock set meanwhile stays
		}
		return nil, time.Time{}, storage.Delete, nil
	})
}
