package caddymfa

import (
	"testing"
	"time"
)

func newTestLockout(t *testing.T, failures int) (*lockout, *testClock) {
	t.Helper()
	clock := &testClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	return &lockout{store: newMemStore(clock.now), now: clock.now, failures: failures, window: 15 * time.Minute}, clock
}

// The attempt after the limit locks; while locked nothing is counted and
// the user stays locked; the lock ends with its window and the count
// starts again.
func TestLockoutCountLocksAfterTheLimit(t *testing.T) {
	l, clock := newTestLockout(t, 3)
	ctx := t.Context()
	for i := 1; i <= 3; i++ {
		locked, just, err := l.count(ctx, "alice", "")
		if err != nil || locked || just {
			t.Fatalf("attempt %d: locked %v, just %v, err %v", i, locked, just, err)
		}
	}
	if locked, just, _ := l.count(ctx, "alice", ""); !locked || !just {
		t.Fatalf("attempt 4: locked %v, just %v; want the lock", locked, just)
	}
	if locked, just, _ := l.count(ctx, "alice", ""); !locked || just {
		t.Fatalf("attempt 5: locked %v, just %v; want locked, not newly", locked, just)
	}
	if locked, _ := l.locked(ctx, "alice", ""); !locked {
		t.Fatal("locked: false during the lock")
	}
	if locked, _ := l.locked(ctx, "bob", ""); locked {
		t.Fatal("bob is locked by alice's failures")
	}
	clock.add(15 * time.Minute)
	if locked, _ := l.locked(ctx, "alice", ""); locked {
		t.Fatal("still locked after the window")
	}
	if locked, just, _ := l.count(ctx, "alice", ""); locked || just {
		t.Fatal("an expired lock did not start a fresh count")
	}
}

// A success clears the count, but never a lock set meanwhile.
func TestLockoutClear(t *testing.T) {
	l, _ := newTestLockout(t, 2)
	ctx := t.Context()
	l.count(ctx, "alice", "")
	l.count(ctx, "alice", "")
	if err := l.clear(ctx, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if rep, _ := l.report(ctx, "alice"); rep.Failures != 0 {
		t.Fatalf("after clear: %d failures", rep.Failures)
	}
	for range 3 {
		l.count(ctx, "alice", "")
	}
	if err := l.clear(ctx, "alice", ""); err != nil {
		t.Fatal(err)
	}
	if locked, _ := l.locked(ctx, "alice", ""); !locked {
		t.Fatal("clear ended a lock")
	}
}

// The admin API reads failures and the lock, and ends it.
func TestLockoutReportAndUnlock(t *testing.T) {
	l, clock := newTestLockout(t, 1)
	ctx := t.Context()
	if rep, err := l.report(ctx, "alice"); err != nil || rep.Failures != 0 || rep.LockedUntil != nil {
		t.Fatalf("no record: %+v %v", rep, err)
	}
	l.count(ctx, "alice", "")
	if rep, _ := l.report(ctx, "alice"); rep.Failures != 1 || rep.LockedUntil != nil {
		t.Fatalf("one failure: %+v", rep)
	}
	l.count(ctx, "alice", "")
	rep, _ := l.report(ctx, "alice")
	if want := clock.now().Add(15 * time.Minute); rep.Failures != 2 || rep.LockedUntil == nil || !rep.LockedUntil.Equal(want) {
		t.Fatalf("locked: %+v, want until %v", rep, want)
	}
	if err := l.unlock(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if locked, _ := l.locked(ctx, "alice", ""); locked {
		t.Fatal("unlock left the lock")
	}
}
