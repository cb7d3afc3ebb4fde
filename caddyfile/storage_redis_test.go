package caddyfile

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	// The Redis store is registered by the plugin's root package; the
	// golden files storage_redis*.caddyfiletest and this test need it here.
	_ "github.com/caddymfa/caddy-mfa/storage/redis"
)

// TestAdaptedRedisProvisions loads a handler adapted from a Caddyfile with
// "storage redis" against a real redis-server: the handler keeps its state
// (the generated secret key, at least) under the configured key prefix.
func TestAdaptedRedisProvisions(t *testing.T) {
	srv := redistest.Start(t)
	t.Setenv("MFA_TEST_REDIS_URL", "redis://"+srv.Addr+"/3")
	input := `app.example.com {
	mfa {
		storage redis {env.MFA_TEST_REDIS_URL} {
			key_prefix app1/
			timeout 1s
		}
		users {
			bob email bob@example.com
		}
		email {
			outbox ` + t.TempDir() + `
		}
	}
	respond "hello"
}`
	objs := adaptedHandlers(t, input)
	if len(objs) != 1 {
		t.Fatalf("%d mfa handlers, want 1", len(objs))
	}
	obj := objs[0]
	delete(obj, "handler")
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if _, err := ctx.LoadModuleByID("http.handlers.mfa", raw); err != nil {
		t.Fatalf("loading %s: %v", raw, err)
	}

	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr, DB: 3, DisableIdentity: true})
	defer c.Close()
	keys, _, err := c.Scan(context.Background(), 0, "*", 1000).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) == 0 {
		t.Fatal("the handler wrote nothing to Redis database 3")
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "app1/") {
			t.Errorf("key %q is outside the key prefix", k)
		}
	}
}
