package badger

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddymfa/caddy-mfa/storage"
)

// gatherWait bounds how long a sync about to start waits for the writes
// in flight to ask for it. It is a bound, not the usual wait, which ends
// when those writes do; against a TOTP sign-in's p50 of about 20 ms under
// 32 clients it is small, and it lets one sync cover the sign-ins whose
// writes overlap instead of one or two (BENCHMARKS.md, "Group commit").
const gatherWait = time.Millisecond

// groupSync coalesces the fsyncs of concurrent durable writes (group
// commit). A durable write needs a sync that starts after the write is in
// the log; when several writers ask at once, one sync covers all of them,
// so N concurrent enrollments cost about one fsync, not N in a row.
//
// Writes that may ask for a sync mark themselves in flight (begin, end).
// A sync about to start first waits, at most gatherWait, for the writes
// in flight at that moment to end, so that it covers those that then ask
// for it too. With no such write in flight it starts at once: a lone
// writer waits for nothing but its own sync.
type groupSync struct {
	sync    func() error
	maxWait time.Duration

	// epoch's low bit selects the counter that begin adds to; a gathering
	// sync flips it and waits for the old counter to drain, so writes that
	// begin meanwhile do not hold it up.
	epoch     atomic.Uint32
	writing   [2]atomic.Int64
	gathering atomic.Bool
	wake      chan struct{} // an end that drained a counter while gathering
	closing   chan struct{} // closed by close

	mu      sync.Mutex
	cond    sync.Cond
	running bool   // a sync is gathering or running
	closed  bool   // no sync starts any more
	started uint64 // syncs started so far
	done    uint64 // the number of the newest finished sync
	err     error  // its outcome
}

func newGroupSync(sync func() error, maxWait time.Duration) *groupSync {
	g := &groupSync{
		sync:    sync,
		maxWait: maxWait,
		wake:    make(chan struct{}, 1),
		closing: make(chan struct{}),
	}
	g.cond.L = &g.mu
	return g
}

// begin marks a write that may ask for a sync as in flight. The caller
// passes the result to end once the write has finished, before it asks
// for the sync.
func (g *groupSync) begin() int {
	i := int(g.epoch.Load() & 1)
	g.writing[i].Add(1)
	return i
}

// end marks the write begun with slot as finished.
func (g *groupSync) end(slot int) {
	if g.writing[slot].Add(-1) == 0 && g.gathering.Load() {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
}

// Sync returns once a sync that started after the call has finished, with
// that sync's error. Writes the caller made before calling are on disk when
// it returns nil. After close it returns storage.ErrClosed unless a sync
// that covers the caller has already finished.
func (g *groupSync) Sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	// A sync running now may have started before the caller's write; the
	// next one to start cannot have.
	need := g.started + 1
	for g.done < need {
		if g.closed {
			return storage.ErrClosed
		}
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
		g.mu.Unlock()
		g.gather()
		g.mu.Lock()
		if g.closed {
			g.running = false
			g.cond.Broadcast()
			return storage.ErrClosed
		}
		// Callers that arrived while gathering computed need from the
		// old count: this sync, which starts after their writes.
		g.started++
		n := g.started
		g.mu.Unlock()
		err := g.sync()
		g.mu.Lock()
		g.running = false
		g.done, g.err = n, err
		g.cond.Broadcast()
	}
	return g.err
}

// gather waits, at most maxWait, until the writes in flight when it is
// called have ended. It returns at once when there are none.
func (g *groupSync) gather() {
	g.gathering.Store(true)
	defer g.gathering.Store(false)
	old := int((g.epoch.Add(1) - 1) & 1)
	if g.writing[old].Load() <= 0 {
		return
	}
	t := time.NewTimer(g.maxWait)
	defer t.Stop()
	for g.writing[old].Load() > 0 {
		select {
		case <-g.wake:
		case <-t.C:
			return
		case <-g.closing:
			return
		}
	}
}

// close makes every waiting and later Sync return storage.ErrClosed
// instead of starting a sync; a sync already running finishes first.
func (g *groupSync) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.closed = true
	close(g.closing)
	g.cond.Broadcast()
}
