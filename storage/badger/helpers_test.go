package badger

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// clock is a settable time source for expiry tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock {
	return &clock{t: time.Now()}
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// caddyContext returns a fresh Caddy context, canceled when the test ends.
func caddyContext(tb testing.TB) caddy.Context {
	tb.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	return ctx
}

// provision provisions s and cleans it up when the test ends.
func provision(tb testing.TB, s *Store) *Store {
	tb.Helper()
	if err := s.Provision(caddyContext(tb)); err != nil {
		tb.Fatalf("provisioning store: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Cleanup(); err != nil {
			tb.Errorf("cleaning up store: %v", err)
		}
	})
	return s
}

// newStore provisions a Store in a fresh directory whose expiry checks
// use c (nil: the real clock).
func newStore(tb testing.TB, c *clock) *Store {
	tb.Helper()
	s := &Store{Dir: tb.TempDir()}
	if c != nil {
		s.now = c.Now
	}
	return provision(tb, s)
}
