package redis

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/storage/storetest"
)

// caddyContext returns a fresh Caddy context, canceled when the test ends.
func caddyContext(tb testing.TB) caddy.Context { return storetest.Context(tb) }

// provision provisions s and cleans it up when the test ends.
func provision(tb testing.TB, s *Store) *Store { return storetest.Provision(tb, s) }

// prefixes numbers the key prefixes of the tests' stores, so stores on one
// server start empty and apart.
var prefixes atomic.Int64

// uniquePrefix returns a key prefix no other store of this test binary has.
func uniquePrefix() string {
	return fmt.Sprintf("test%d/", prefixes.Add(1))
}

// newStore provisions a Store on srv with a fresh key prefix whose expiry
// checks use now (nil: the real clock).
func newStore(tb testing.TB, srv *redistest.Server, now func() time.Time) *Store {
	tb.Helper()
	s := &Store{URL: "redis://" + srv.Addr, KeyPrefix: uniquePrefix()}
	if now != nil {
		s.now = now
	}
	return provision(tb, s)
}

// rawClient returns a go-redis client on srv for looking behind the store.
func rawClient(tb testing.TB, srv *redistest.Server) *goredis.Client {
	tb.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr, DisableIdentity: true})
	tb.Cleanup(func() { c.Close() })
	return c
}
