package badger

import (
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/storage/storetest"
)

// caddyContext returns a fresh Caddy context, canceled when the test ends.
func caddyContext(tb testing.TB) caddy.Context { return storetest.Context(tb) }

// provision provisions s and cleans it up when the test ends.
func provision(tb testing.TB, s *Store) *Store { return storetest.Provision(tb, s) }

// newStore provisions a Store in a fresh directory.
func newStore(tb testing.TB) *Store {
	tb.Helper()
	return provision(tb, &Store{Dir: tb.TempDir()})
}
