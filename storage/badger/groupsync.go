package badger

import "sync"

// groupSync coalesces the fsyncs of concurrent durable writes (group
// commit). A durable write needs a sync that starts after the write is in
// the log; when several writers ask at once, one sync covers all of them,
// so N concurrent enrollments cost about one fsync, not N in a row.
type groupSync struct {
	sync func() error

	mu      sync.Mutex
	cond    sync.Cond
	running bool
	started uint64 // syncs started so far
	done    uint64 // the number of the newest finished sync
	err     error  // its outcome
}

func newGroupSync(sync func() error) *groupSync {
	g := &groupSync{sync: sync}
	g.cond.L = &g.mu
	return g
}

// Sync returns once a sync that started after the call has finished, with
// that sync's error. Writes the caller made before calling are on disk when
// it returns nil.
func (g *groupSync) Sync() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	// A sync running now may have started before the caller's write; the
	// next one to start cannot have.
	need := g.started + 1
	for g.done < need {
		if g.running {
			g.cond.Wait()
			continue
		}
		g.running = true
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
