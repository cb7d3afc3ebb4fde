package storetest

import (
	"context"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Context returns a fresh Caddy context, canceled when the test ends.
func Context(tb testing.TB) caddy.Context {
	tb.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	return ctx
}

// Module is a store module as the tests provision it.
type Module interface {
	Provision(caddy.Context) error
	Cleanup() error
}

// Provision provisions s in a fresh context and cleans it up when the test
// ends, failing the test if either step fails.
func Provision[M Module](tb testing.TB, s M) M {
	tb.Helper()
	if err := s.Provision(Context(tb)); err != nil {
		tb.Fatalf("provisioning store: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Cleanup(); err != nil {
			tb.Errorf("cleaning up store: %v", err)
		}
	})
	return s
}
