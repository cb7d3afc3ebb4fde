package caddymfa

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// newCap is the cap of limit sends per window under the key of parts
// joined by "/". A cap that is off (limit 0 or less) counts nothing and
// gets no key: a send checks up to seven caps, and building the keys of
// those turned off would be most of what the check allocates.
func newCap(scope string, limit int, window time.Duration, parts ...string) windowCap {
	c := windowCap{scope: scope, limit: limit, window: window}
	if limit > 0 {
		c.key = strings.Join(parts, "/")
	}
	return c
}

// userWideSends is, in standalone mode, how many times the per-network
// caps of one user or address its user-wide caps allow: a client cannot
// use up a user's sends from another network, and the mail one user can
// be sent stays bounded.
const userWideSends = 3

// sendCheck is one send to count against the caps.
type sendCheck struct {
	method string
	lim    *authenticators.Throttle
	ip     string
	userID string // store ID of the user name (standalone: as typed)
	// destKey is the store key of the destination; "" when nothing is
	// sent (a name without an address).
	destKey string
	// network is the client network in standalone mode, "" in
	// second-factor mode.
	network string
	// extra caps count only sends that go out (the per-country cap of
	// SMS, against SMS pumping).
	extra []windowCap
}

// counter is a fixed-window counter that was counted, to take back.
type counter struct {
	key string
	end time.Time
}

// checkSendCaps counts one send against every cap that applies (method
// per hour and per 5 minutes, client IP, user, destination, the extra
// caps) and the cooldown (SECURITY.md I39). It counts before it checks,
// so concurrent requests cannot overshoot a cap; a refused send takes its
// counts back, so refused requests count toward no cap (L58) and waiting
// out the given time is enough.
//
// A send with no destination (a name that gets no message) counts only
// per client address and per name: it only checks the site-wide caps,
// without using them up (L55). In standalone mode the caps that would
// tell whether a name exists, or whether two names share an address (the
// caps and cooldown of the destination, the extra caps), are silent:
// send comes back false, nothing goes out and the answer is the one of a
// send (L56). The per-user and per-destination caps count per client
// network there, under user-wide caps userWideSends times higher.
func (t *throttle) checkSendCaps(ctx context.Context, sc sendCheck) (send bool, err error) {
	now := t.now()
	lim := sc.lim
	standalone := sc.network != ""
	var done []counted
	defer func() {
		var te *throttledError
		refused := errors.As(err, &te)
		if !refused && (err != nil || send) {
			return
		}
		// Refused: take every count back. Not sent: take back what
		// counts only sends. (A count that stays only makes a cap
		// stricter until its window ends.)
		for _, c := range done {
			if c.keep && !refused {
				continue
			}
			_, _ = t.store.Incr(ctx, c.key, -1, c.end)
		}
	}()
	count := func(c windowCap, keepOnSilent bool) (bool, error) {
		if c.limit <= 0 {
			return true, nil
		}
		key, end := t.windowKey(c, now)
		n, err := t.store.Incr(ctx, key, 1, end)
		if err != nil {
			return false, fmt.Errorf("counting %s throttle: %w", c.scope, err)
		}
		done = append(done, counted{counter{key, end}, keepOnSilent})
		if n > int64(c.limit) {
			t.metrics.throttle(c.scope)
			return false, &throttledError{scope: c.scope, retryAfter: end.Sub(now)}
		}
		return true, nil
	}
	m := sc.method
	// Every request, sent or not: per client address, per name.
	visible := []windowCap{newCap("ip", lim.PerIPPerHour, time.Hour, "ip", m, sc.ip)}
	if standalone {
		visible = append(visible,
			newCap("user", lim.PerUserPerHour, time.Hour, "user", m, sc.userID, sc.network),
			newCap("user", lim.PerUserPerHour*userWideSends, time.Hour, "user", m, sc.userID))
	} else {
		visible = append(visible, newCap("user", lim.PerUserPerHour, time.Hour, "user", m, sc.userID))
	}
	for _, c := range visible {
		if _, err := count(c, true); err != nil {
			return false, err
		}
	}
	global := []windowCap{
		newCap("global_hour", lim.PerHour, time.Hour, "h", m),
		newCap("global_5m", lim.Per5m, 5*time.Minute, "5m", m),
	}
	if sc.destKey == "" {
		// Nothing goes out: check the site-wide caps without using them.
		for _, c := range global {
			if err := t.peek(ctx, c, now); err != nil {
				return false, err
			}
		}
		return false, t.cooldown(ctx, lim, "u:"+sc.userID, now)
	}
	for _, c := range global {
		if _, err := count(c, false); err != nil {
			return false, err
		}
	}
	dest := []windowCap{newCap("destination", lim.PerDestinationPerHour, time.Hour, "dest", sc.destKey)}
	if standalone {
		dest = []windowCap{
			newCap("destination", lim.PerDestinationPerHour, time.Hour, "dest", sc.destKey, sc.network),
			newCap("destination", lim.PerDestinationPerHour*userWideSends, time.Hour, "dest", sc.destKey),
		}
	}
	dest = append(dest, sc.extra...)
	if !standalone {
		for _, c := range dest {
			if _, err := count(c, false); err != nil {
				return false, err
			}
		}
		return true, t.cooldown(ctx, lim, sc.destKey, now)
	}
	// Standalone: the cooldown of the name is visible, as it is for
	// every name; what belongs to the address is silent.
	if err := t.cooldown(ctx, lim, "u:"+sc.userID, now); err != nil {
		return false, err
	}
	for _, c := range dest {
		var te *throttledError
		if _, err := count(c, false); errors.As(err, &te) {
			return false, nil
		} else if err != nil {
			return false, err
		}
	}
	var te *throttledError
	if err := t.cooldown(ctx, lim, sc.destKey, now); errors.As(err, &te) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return true, nil
}

// counted is a counter counted by one send; keep: it stays when the send
// is silently not sent (it counts every request, sent or not).
type counted struct {
	counter
	keep bool
}

// windowKey is the store key of a cap's current window and its end.
func (t *throttle) windowKey(c windowCap, now time.Time) (string, time.Time) {
	start := now.Truncate(c.window)
	return keyThrottle + c.key + "/" + strconv.FormatInt(start.Unix(), 10), start.Add(c.window)
}

// peek refuses when a cap is already used up, without counting.
func (t *throttle) peek(ctx context.Context, c windowCap, now time.Time) error {
	if c.limit <= 0 {
		return nil
	}
	key, end := t.windowKey(c, now)
	rec, err := t.store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s throttle: %w", c.scope, err)
	}
	if len(rec.Value) == 8 && int64(binary.BigEndian.Uint64(rec.Value)) >= int64(c.limit) {
		t.metrics.throttle(c.scope)
		return &throttledError{scope: c.scope, retryAfter: end.Sub(now)}
	}
	return nil
}

// cooldown starts the cooldown of key, or refuses while one runs.
func (t *throttle) cooldown(ctx context.Context, lim *authenticators.Throttle, key string, now time.Time) error {
	cool := time.Duration(lim.Cooldown)
	if cool <= 0 {
		return nil
	}
	var wait time.Duration
	err := t.store.Update(ctx, keyThrottle+"cool/"+key, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		wait = 0
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
		return &throttledError{scope: scopeCooldown, retryAfter: wait}
	}
	return nil
}

// endCooldown ends the send cooldowns a challenge started: its code was
// used, so a sign-in that follows (sign out, sign in again) may send at
// once.
func (t *throttle) endCooldown(ctx context.Context, keys []string) {
	for _, k := range keys {
		// Best effort: a cooldown that stays ends by itself.
		_ = t.store.Delete(ctx, keyThrottle+"cool/"+k)
	}
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
