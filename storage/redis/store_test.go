package redis

import (
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/storage"
	"github.com/caddymfa/caddy-mfa/storage/storetest"
)

// TestConformance runs the behaviour every store shares (storage/storetest)
// on a real redis-server, each test under its own key prefix.
func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(tb testing.TB, now func() time.Time) storage.Store {
		return newStore(tb, srv, now)
	})
}
