package caddymfa

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/caddymfa/caddy-mfa/storage"
)

// lockout is the failure limit (SECURITY.md A4, J46, L54): it owns the
// lock/<user> records. Every verification counts in it before anything
// is compared (verifier.run), a success clears it, and the admin API
// reports and ends it.
//
// In second-factor mode the guesser holds the user's password, so one
// count per user locks them everywhere. In standalone mode anybody can
// name a user, so failures count per user and client network
// (lock/<user>/<network>, see clientNetwork): guessing from one network
// locks that network out for that user, and a higher user-wide cap
// (lock/<user>, over a longer window, not reset by successes) bounds
// guessing spread over many networks.
type lockout struct {
	store    storage.Store
	now      func() time.Time
	failures int           // consecutive failures that lock (per network in standalone mode)
	window   time.Duration // how long failures are remembered and a lock lasts
	// perNetwork is standalone mode: failures and window apply per
	// client network, userFailures and userWindow to the user as a whole.
	perNetwork   bool
	userFailures int
	userWindow   time.Duration
}

// lockRecord counts a user's consecutive failures.
type lockRecord struct {
	Fails       int       `json:"f"`
	LockedUntil time.Time `json:"l,omitempty"`
}

// lockReport is what the admin API shows of a user's lockout.
type lockReport struct {
	Failures    int
	LockedUntil *time.Time // nil when not locked
	// Networks are the client networks with failures (standalone mode).
	Networks []networkLock
}

// networkLock is the lockout of one user from one client network.
type networkLock struct {
	Network     string     `json:"network"`
	Failures    int        `json:"failures"`
	LockedUntil *time.Time `json:"locked_until,omitempty"`
}

// clientNetwork is the network a standalone lockout counts a client in:
// the /24 of an IPv4 address, the /56 of an IPv6 one (what one household
// or one small hosting customer usually holds). An address that does not
// parse counts in one shared network.
func clientNetwork(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return "unknown"
	}
	addr = addr.Unmap().WithZone("")
	bits := 56
	if addr.Is4() {
		bits = 24
	}
	pfx, err := addr.Prefix(bits)
	if err != nil {
		return "unknown"
	}
	// Appended on the stack, the text costs one allocation; String makes
	// the address's text, then the prefix's.
	var text [len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128")]byte
	return string(pfx.AppendTo(text[:0]))
}

// lockKeys returns the keys an attempt from network counts in, with
// their limits: the user's own record, and in standalone mode the
// record of the user and network first.
//
// Users are counted by their canonical form (lockName): "Alice" and
// "alice" are two users but one lockout (SECURITY.md A6, K51).
func (l *lockout) lockKeys(user, network string) []lockCounter {
	user = lockName(user)
	if !l.perNetwork || network == "" {
		return []lockCounter{{keyLockout + user, l.failures, l.window}}
	}
	return []lockCounter{
		{keyLockout + user + "/" + network, l.failures, l.window},
		{keyLockout + user, l.userFailures, l.userWindow},
	}
}

type lockCounter struct {
	key      string
	failures int
	window   time.Duration
}

// count counts a verification attempt from network as a failure before
// its code is compared, in one atomic step over all the user's lockout
// records, and reports whether the user is locked for that network (then
// the code must not be compared at all) and whether this attempt locked
// them. A success later clears the count (clear). network is "" in
// second-factor mode. The code, TOTP and recovery paths count in the same
// store operation that compares (verifier.guarded); this is for the
// others (links, unreadable input).
func (l *lockout) count(ctx context.Context, user, network string) (locked, justLocked bool, err error) {
	counters := l.lockKeys(user, network)
	now := l.now()
	err = l.store.UpdateMany(ctx, counterKeys(counters), func(cur []storage.Record, found []bool) ([]storage.Change, error) {
		changes := make([]storage.Change, len(counters))
		var err error
		locked, justLocked, err = countIn(counters, cur, found, now, changes)
		return changes, err
	})
	return locked, justLocked, err
}

// counterKeys returns the store keys of counters, in order.
func counterKeys(counters []lockCounter) []string {
	keys := make([]string, len(counters))
	for i, c := range counters {
		keys[i] = c.key
	}
	return keys
}

// countIn counts an attempt in the lockout records cur of counters (as
// lockKeys orders them), writing the changes into changes, and reports
// whether the user is locked and whether this attempt locked them. An
// attempt refused by the network's lock does not count user-wide, so one
// network adds at most failures+1 to the user-wide count per window.
func countIn(counters []lockCounter, cur []storage.Record, found []bool, now time.Time, changes []storage.Change) (locked, justLocked bool, err error) {
	for i, c := range counters {
		changes[i], locked, justLocked, err = c.countRecord(cur[i], found[i], now)
		if err != nil || locked {
			return locked, justLocked, err
		}
	}
	return false, false, nil
}

// countRecord counts an attempt in one lockout record: the change to
// write, and whether the record locks the user (then it changes nothing)
// or this attempt locked them.
func (c lockCounter) countRecord(cur storage.Record, found bool, now time.Time) (change storage.Change, locked, justLocked bool, err error) {
	var rec lockRecord
	if found {
		if rec, err = decodeRecord[lockRecord](cur.Value); err != nil {
			return storage.Change{}, false, false, err
		}
	}
	if now.Before(rec.LockedUntil) {
		return storage.Change{}, true, false, nil
	}
	if !rec.LockedUntil.IsZero() {
		rec = lockRecord{} // an expired lock starts a fresh count
	}
	rec.Fails++
	if rec.Fails > c.failures {
		rec.LockedUntil = now.Add(c.window)
		locked, justLocked = true, true
	}
	b, err := encodeRecord(rec)
	return storage.Change{Value: b, ExpiresAt: now.Add(c.window), Op: storage.Write}, locked, justLocked, err
}

// clearIn is clear inside the store operation that counted a successful
// attempt, over the changes to the lockout records (as lockKeys orders
// them): the first record (the user's, or in standalone mode the user
// and network's) goes; the user-wide count of standalone mode stays as
// it was before the attempt, which was no failure. The attempt
// succeeded, so the count did not lock.
func clearIn(found []bool, changes []storage.Change) {
	for i := range changes {
		changes[i] = storage.Change{}
	}
	if found[0] {
		changes[0].Op = storage.Delete
	}
}

// clear resets the consecutive-failure count of a user (in standalone
// mode: of the user and network) after a success. A lock set meanwhile
// stays. The user-wide count of standalone mode is not reset by the
// user's own sign-ins, so it bounds the guesses of any window
// (userFailures per userWindow), however often she signs in; it only
// takes back the one count of the attempt that succeeded, so her own
// sign-ins never add up to a lock.
func (l *lockout) clear(ctx context.Context, user, network string) error {
	counters := l.lockKeys(user, network)
	for _, c := range counters[1:] {
		if err := l.store.Update(ctx, c.key, takeBackOne); err != nil {
			return err
		}
	}
	for _, c := range counters[:1] {
		err := l.store.Update(ctx, c.key, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
			if !found {
				return nil, time.Time{}, storage.Keep, nil
			}
			rec, err := decodeRecord[lockRecord](cur.Value)
			if err != nil {
				return nil, time.Time{}, storage.Keep, err
			}
			if l.now().Before(rec.LockedUntil) {
				return nil, time.Time{}, storage.Keep, nil
			}
			return nil, time.Time{}, storage.Delete, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// takeBackOne is the store update that removes the count of one
// successful attempt from a user-wide record; a lock stays.
func takeBackOne(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
	if !found {
		return nil, time.Time{}, storage.Keep, nil
	}
	rec, err := decodeRecord[lockRecord](cur.Value)
	if err != nil || !rec.LockedUntil.IsZero() || rec.Fails == 0 {
		return nil, time.Time{}, storage.Keep, err
	}
	if rec.Fails--; rec.Fails == 0 {
		return nil, time.Time{}, storage.Delete, nil
	}
	b, err := encodeRecord(rec)
	return b, cur.ExpiresAt, storage.Write, err
}

// locked reports whether the user is locked out for network, without
// counting an attempt.
func (l *lockout) locked(ctx context.Context, user, network string) (bool, error) {
	for _, c := range l.lockKeys(user, network) {
		rec, found, err := l.read(ctx, c.key)
		if err != nil {
			return false, err
		}
		if found && l.now().Before(rec.LockedUntil) {
			return true, nil
		}
	}
	return false, nil
}

// report reads a user's failures and locks for the admin API. A record
// that does not decode reports nothing.
func (l *lockout) report(ctx context.Context, user string) (lockReport, error) {
	user = lockName(user)
	rep := lockReport{Networks: []networkLock{}}
	rec, found, err := l.read(ctx, keyLockout+user)
	switch {
	case errors.Is(err, errBadRecord):
	case err != nil:
		return lockReport{}, err
	case found:
		rep.Failures = rec.Fails
		if l.now().Before(rec.LockedUntil) {
			until := rec.LockedUntil
			rep.LockedUntil = &until
		}
	}
	prefix := keyLockout + user + "/"
	recs, err := l.store.List(ctx, prefix, 0, false)
	if err != nil {
		return lockReport{}, fmt.Errorf("listing network lockouts: %w", err)
	}
	for _, r := range recs {
		lr, err := decodeRecord[lockRecord](r.Value)
		if err != nil {
			continue
		}
		nl := networkLock{Network: strings.TrimPrefix(r.Key, prefix), Failures: lr.Fails}
		if l.now().Before(lr.LockedUntil) {
			until := lr.LockedUntil
			nl.LockedUntil = &until
		}
		rep.Networks = append(rep.Networks, nl)
	}
	return rep, nil
}

// unlock ends a user's lockouts, user-wide and per network, and forgets
// the failures (admin API).
func (l *lockout) unlock(ctx context.Context, user string) error {
	user = lockName(user)
	if err := l.store.DeletePrefix(ctx, keyLockout+user+"/"); err != nil {
		return err
	}
	return l.store.Delete(ctx, keyLockout+user)
}

func (l *lockout) read(ctx context.Context, key string) (lockRecord, bool, error) {
	rec, err := l.store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return lockRecord{}, false, nil
	}
	if err != nil {
		return lockRecord{}, false, fmt.Errorf("reading lockout: %w", err)
	}
	lr, err := decodeRecord[lockRecord](rec.Value)
	if err != nil {
		return lockRecord{}, false, err
	}
	return lr, true, nil
}
