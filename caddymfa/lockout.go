package caddymfa

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/caddymfa/caddy-mfa/storage"
)

// lockout is the per-user failure limit (SECURITY.md A4, J46): it owns
// the lock/<user> records. Every verification counts in it before
// anything is compared (verifier.run), a success clears it, and the
// admin API reports and ends it.
type lockout struct {
	store    storage.Store
	now      func() time.Time
	failures int           // consecutive failures that lock
	window   time.Duration // how long failures are remembered and a lock lasts
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
}

// count counts a verification attempt as a failure before its code is
// compared, in one atomic step, and reports whether the user is locked
// (then the code must not be compared at all) and whether this attempt
// locked them. A success later clears the count (clear).
func (l *lockout) count(ctx context.Context, user string) (locked, justLocked bool, err error) {
	now := l.now()
	err = l.store.Update(ctx, keyLockout+user, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
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
		if rec.Fails > l.failures {
			rec.LockedUntil = now.Add(l.window)
			locked, justLocked = true, true
		}
		b, err := encodeRecord(rec)
		return b, now.Add(l.window), storage.Write, err
	})
	return locked, justLocked, err
}

// clear resets the consecutive-failure count after a success. A lock set
// meanwhile stays.
func (l *lockout) clear(ctx context.Context, user string) error {
	return l.store.Update(ctx, keyLockout+user, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
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
}

// locked reports whether the user is locked out, without counting an
// attempt.
func (l *lockout) locked(ctx context.Context, user string) (bool, error) {
	rec, found, err := l.read(ctx, user)
	if err != nil || !found {
		return false, err
	}
	return l.now().Before(rec.LockedUntil), nil
}

// report reads a user's failures and lock for the admin API. A record
// that does not decode reports nothing.
func (l *lockout) report(ctx context.Context, user string) (lockReport, error) {
	rec, found, err := l.read(ctx, user)
	if errors.Is(err, errBadRecord) || !found {
		return lockReport{}, nil
	}
	if err != nil {
		return lockReport{}, err
	}
	rep := lockReport{Failures: rec.Fails}
	if l.now().Before(rec.LockedUntil) {
		until := rec.LockedUntil
		rep.LockedUntil = &until
	}
	return rep, nil
}

// unlock ends a lockout and forgets the failures (admin API).
func (l *lockout) unlock(ctx context.Context, user string) error {
	return l.store.Delete(ctx, keyLockout+user)
}

func (l *lockout) read(ctx context.Context, user string) (lockRecord, bool, error) {
	rec, err := l.store.Get(ctx, keyLockout+user)
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
