package badger

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Concurrent callers share syncs, and each returns only after a sync that
// started after its call.
func TestGroupSyncCoalescesAndCovers(t *testing.T) {
	var syncs atomic.Int64
	var written atomic.Int64 // writes made before their callers asked
	var synced atomic.Int64  // writes covered by the newest finished sync
	g := newGroupSync(func() error {
		covered := written.Load()
		syncs.Add(1)
		time.Sleep(2 * time.Millisecond) // an fsync takes a while
		synced.Store(covered)
		return nil
	})
	const callers = 200
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			written.Add(1)
			mine := written.Load()
			if err := g.Sync(); err != nil {
				t.Error(err)
			}
			if synced.Load() < mine {
				t.Errorf("returned before its write was synced: synced %d, wrote %d", synced.Load(), mine)
			}
		})
	}
	wg.Wait()
	if n := syncs.Load(); n >= callers || n == 0 {
		t.Fatalf("%d syncs for %d concurrent callers; want them shared", n, callers)
	}
	t.Logf("%d syncs for %d callers", syncs.Load(), callers)
}

// A failed sync fails the callers it covered; the next caller tries again.
func TestGroupSyncReportsErrors(t *testing.T) {
	fail := errors.New("no space left on device")
	var next error = fail
	g := newGroupSync(func() error { return next })
	if err := g.Sync(); !errors.Is(err, fail) {
		t.Fatalf("first sync: %v", err)
	}
	next = nil
	if err := g.Sync(); err != nil {
		t.Fatalf("sync after space returned: %v", err)
	}
}
