package badger

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

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

// newStore provisions a Store in a fresh directory.
func newStore(tb testing.TB) *Store {
	tb.Helper()
	return provision(tb, &Store{Dir: tb.TempDir()})
}
