package caddymfa

import (
	"context"
	"encoding/binary"
	"errors"
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

// throttle owns the send caps and cooldowns (thr/): fixed-window
// counters in the store.
type throttle struct {
	store   storage.Store
	now     func() time.Time
	metrics *metricSet
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
// checks, so concurrent requests cannot overshoot a cap; a refused send
// takes its counts back, so refused requests count toward no cap
// (SECURITY.md L58) and waiting out the given time is enough.
func (t *throttle) checkSendCaps(ctx context.Context, method string, lim *authenticators.Throttle, ip, user, destKey string, extra ...windowCap) (err error) {
	now := t.now()
	caps := append([]windowCap{
		{"global_hour", "h/" + method, lim.PerHour, time.Hour},
		{"global_5m", "5m/" + method, lim.Per5m, 5 * time.Minute},
		{"ip", "ip/" + method + "/" + ip, lim.PerIPPerHour, time.Hour},
		{"user", "user/" + method + "/" + user, lim.PerUserPerHour, time.Hour},
		{"destination", "dest/" + destKey, lim.PerDestinationPerHour, time.Hour},
	}, extra...)
	type counted struct {
		key string
		end time.Time
	}
	var done []counted
	defer func() {
		var te *throttledError
		if !errors.As(err, &te) {
			return
		}
		for _, c := range done {
			// Best effort: a count that stays only makes the cap
			// stricter until its window ends.
			_, _ = t.store.Incr(ctx, c.key, -1, c.end)
		}
	}()
	for _, c := range caps {
		if c.limit <= 0 {
			continue
		}
		start := now.Truncate(c.window)
		end := start.Add(c.window)
		key := keyThrottle + c.key + "/" + strconv.FormatInt(start.Unix(), 10)
		n, err := t.store.Incr(ctx, key, 1, end)
		if err != nil {
			return fmt.Errorf("counting %s throttle: %w", c.scope, err)
		}
		done = append(done, counted{key, end})
		if n > int64(c.limit) {
			t.metrics.throttle(c.scope)
			return &throttledError{scope: c.scope, retryAfter: end.Sub(now)}
		}
	}
	if cool := time.Duration(lim.Cooldown); cool > 0 {
		var wait time.Duration
		err := t.store.Update(ctx, keyThrottle+"cool/"+destKey, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
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
			t.metrics.throttle("cooldown")
			return &throttledError{scope: "cooldown", retryAfter: wait}
		}
	}
	return nil
}

// endCooldown ends the send cooldown of destKey: its code was used, so a
// sign-in that follows (sign out, sign in again) may send at once.
func (t *throttle) endCooldown(ctx context.Context, destKey string) {
	if destKey == "" {
		return
	}
	// Best effort: a cooldown that stays ends by itself.
	_ = t.store.Delete(ctx, keyThrottle+"cool/"+destKey)
}

// throttleReport is one active throttle of a user, for the admin API.
type throttleReport struct {
	Scope   string    `json:"scope"`
	Count   int64     `json:"count,omitempty"` // sends counted; none for a cooldown
	Expires time.Time `json:"expires"`
}

// userThrottle names what of the throttle store belongs to one user: the
// store ID of the user name and the destination keys of their addresses
// (as challenges.issue builds them).
type userThrottle struct {
	userID   string
	destKeys []string
}

// prefixes lists the store key prefixes of the user's throttles, with the
// scope each reports as.
func (u userThrottle) prefixes() [][2]string {
	var ps [][2]string
	for _, m := range []string{methodEmail, methodSMS} {
		ps = append(ps, [2]string{"user/" + m, keyThrottle + "user/" + m + "/" + u.userID + "/"})
	}
	ps = append(ps, [2]string{"enroll", keyThrottle + "enroll/" + u.userID + "/"})
	for _, d := range u.destKeys {
		ps = append(ps, [2]string{"destination", keyThrottle + "dest/" + d + "/"}, [2]string{"cooldown", keyThrottle + "cool/" + d})
	}
	return ps
}

// report lists the user's active throttles with their expiry.
func (t *throttle) report(ctx context.Context, u userThrottle) ([]throttleReport, error) {
	out := []throttleReport{}
	for _, p := range u.prefixes() {
		recs, err := t.store.List(ctx, p[1], 0, false)
		if err != nil {
			return nil, fmt.Errorf("listing throttles: %w", err)
		}
		for _, r := range recs {
			rep := throttleReport{Scope: p[0], Expires: r.ExpiresAt}
			if p[0] != "cooldown" {
				if len(r.Value) != 8 {
					continue
				}
				rep.Count = int64(binary.BigEndian.Uint64(r.Value))
			} else if r.Key != p[1] {
				continue // the cooldown of another destination sharing the prefix
			}
			out = append(out, rep)
		}
	}
	return out, nil
}

// clearUser ends the user's own throttles: per-user caps, setups, and the
// caps and cooldowns of the user's addresses (admin unlock). Caps per
// client address and site-wide ones stay.
func (t *throttle) clearUser(ctx context.Context, u userThrottle) error {
	for _, p := range u.prefixes() {
		var err error
		if p[0] == "cooldown" {
			err = t.store.Delete(ctx, p[1])
		} else {
			err = t.store.DeletePrefix(ctx, p[1])
		}
		if err != nil {
			return fmt.Errorf("clearing throttles: %w", err)
		}
	}
	return nil
}
