package badger

import (
	"context"
	"errors"
	"maps"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/storage"
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
	}, gatherWait)
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
	g := newGroupSync(func() error { return next }, gatherWait)
	if err := g.Sync(); !errors.Is(err, fail) {
		t.Fatalf("first sync: %v", err)
	}
	next = nil
	if err := g.Sync(); err != nil {
		t.Fatalf("sync after space returned: %v", err)
	}
}

// Writers still in flight when a sync is about to start are waited for,
// so one sync covers them: 32 writers that each write and then ask for a
// sync, all begun before the first asks, share far fewer than 32 syncs,
// and each returns only after a sync that covered its write.
func TestGroupSyncGathersWritesInFlight(t *testing.T) {
	const writers = 32
	var mu sync.Mutex
	written := map[int]bool{} // writes finished
	synced := map[int]bool{}  // writes covered by a finished sync
	syncs := 0
	g := newGroupSync(func() error {
		mu.Lock()
		defer mu.Unlock()
		syncs++
		maps.Copy(synced, written) // what is written when the sync starts is on disk when it ends
		return nil
	}, time.Hour) // bounded only by the writers: the test must not pass by timing out
	slots := beginAll(g, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			mu.Lock()
			written[i] = true
			mu.Unlock()
			g.end(slots[i])
			if err := g.Sync(); err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !synced[i] {
				t.Errorf("writer %d returned before a sync covered its write", i)
			}
		})
	}
	wg.Wait()
	// The first sync waits for every writer in flight; at most a second
	// one covers those that asked while the first ran.
	if syncs > 2 {
		t.Fatalf("%d syncs for %d writers in flight together; want them gathered into one or two", syncs, writers)
	}
	t.Logf("%d syncs for %d writers", syncs, writers)
}

// A lone writer's sync starts at once: with no other write in flight
// there is nothing to gather. The sync func sees the caller's own
// in-flight mark gone and no other, and the gather timer would never fire
// in this test's lifetime, so a wait would hang it.
func TestGroupSyncLoneWriterStartsAtOnce(t *testing.T) {
	var g *groupSync
	var inFlight []int64
	g = newGroupSync(func() error {
		inFlight = append(inFlight, g.writing[0].Load()+g.writing[1].Load())
		return nil
	}, time.Hour)
	for range 3 {
		slot := g.begin()
		g.end(slot)
		if err := g.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if len(inFlight) != 3 {
		t.Fatalf("%d syncs for 3 writes one after another; want 3", len(inFlight))
	}
	for i, n := range inFlight {
		if n != 0 {
			t.Fatalf("sync %d ran with %d writes in flight", i, n)
		}
	}
}

// A failed sync fails every caller it covered, not only the one that ran
// it.
func TestGroupSyncErrorReachesAllWaiters(t *testing.T) {
	const writers = 16
	fail := errors.New("input/output error")
	var syncs atomic.Int64
	g := newGroupSync(func() error {
		syncs.Add(1)
		return fail
	}, time.Hour)
	slots := beginAll(g, writers)
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			g.end(slots[i])
			if err := g.Sync(); !errors.Is(err, fail) {
				t.Errorf("writer %d: %v, want the sync's error", i, err)
			}
		})
	}
	wg.Wait()
	if syncs.Load() == 0 {
		t.Fatal("no sync ran")
	}
}

// Closing the store while a sync gathers for a write that never ends, and
// while others wait behind it, returns every waiter with ErrClosed.
func TestGroupSyncCloseWhileWaiting(t *testing.T) {
	var syncs atomic.Int64
	g := newGroupSync(func() error {
		syncs.Add(1)
		return nil
	}, time.Hour)
	g.begin() // a write that never finishes
	const waiters = 4
	errs := make(chan error, waiters)
	for range waiters {
		go func() { errs <- g.Sync() }()
	}
	// Wait until one waiter is gathering and the rest are queued behind.
	for !g.gathering.Load() {
		select {
		case err := <-errs:
			t.Fatalf("a waiter returned (%v) while a write it should gather for was in flight", err)
		default:
			runtime.Gosched()
		}
	}
	g.close()
	for range waiters {
		if err := <-errs; !errors.Is(err, storage.ErrClosed) {
			t.Fatalf("waiter after close: %v, want ErrClosed", err)
		}
	}
	if err := g.Sync(); !errors.Is(err, storage.ErrClosed) {
		t.Fatalf("sync after close: %v, want ErrClosed", err)
	}
	if n := syncs.Load(); n != 0 {
		t.Fatalf("%d syncs ran after close", n)
	}
}

// beginAll marks n writes in flight on g, all before any of them ends.
func beginAll(g *groupSync, n int) []int {
	slots := make([]int, n)
	for i := range slots {
		slots[i] = g.begin()
	}
	return slots
}

// A durable UpdateMany waiting for its sync holds no key lock: another
// writer of the same keys goes ahead (and a durable one is covered by a
// later sync), instead of queueing behind the first one's sync, as it
// did when the locks were held until UpdateMany returned.
func TestUpdateManyReleasesKeysBeforeSync(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	inSync := make(chan struct{})
	release := make(chan struct{})
	var once sync.Once
	fsync := s.db.syncer.sync
	s.db.syncer.sync = func() error {
		once.Do(func() {
			close(inSync)
			<-release
		})
		return fsync()
	}
	keys := []string{"user/alice", "sess/1", "sidx/alice"}
	write := func(op storage.Op, v string) func([]storage.Record, []bool) ([]storage.Change, error) {
		return func(cur []storage.Record, _ []bool) ([]storage.Change, error) {
			ch := make([]storage.Change, len(cur))
			for i := range ch {
				ch[i] = storage.Change{Op: op, Value: []byte(v)}
			}
			return ch, nil
		}
	}
	first := make(chan error, 1)
	go func() { first <- s.UpdateMany(ctx, keys, write(storage.WriteDurable, "first")) }()
	<-inSync

	second := make(chan error, 1)
	go func() { second <- s.UpdateMany(ctx, keys, write(storage.Write, "second")) }()
	select {
	case err := <-second:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a hang guard, not a timing bound
		close(release)
		t.Fatal("a writer of the same keys waited for another write's sync")
	}
	select {
	case err := <-first:
		t.Fatalf("the durable write returned before its sync: %v", err)
	default:
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "user/alice")
	if err != nil || string(got.Value) != "second" {
		t.Fatalf("user/alice = %q, %v; want the second write", got.Value, err)
	}
}
