package caddymfa

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymfa/caddy-mfa/storage"
)

// provisionedNotStarted provisions a config with one mfa handler as Caddy
// does before it starts the apps, and returns the context and the handler.
func provisionedNotStarted(t *testing.T, store string) (caddy.Context, *Handler) {
	t.Helper()
	h, _ := testConfig(t)
	h.SecretKey = "" // generated: kept in the store
	h.StorageRaw = json.RawMessage(`{"backend":"badger","dir":` + quote(store) + `}`)
	handler, err := json.Marshal(h)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(handler, &obj); err != nil {
		t.Fatal(err)
	}
	obj["handler"] = "mfa"
	cfg := map[string]any{
		"admin": map[string]any{"disabled": true},
		"apps": map[string]any{"http": map[string]any{"servers": map[string]any{"srv0": map[string]any{
			"listen": []string{"127.0.0.1:0"},
			"routes": []any{map[string]any{"handle": []any{obj}}},
		}}}},
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var config caddy.Config
	if err := json.Unmarshal(raw, &config); err != nil {
		t.Fatal(err)
	}
	ctx, err := caddy.ProvisionContext(&config)
	if err != nil {
		t.Fatalf("provisioning: %v", err)
	}
	app, err := ctx.App("http")
	if err != nil {
		t.Fatal(err)
	}
	route := app.(*caddyhttp.App).Servers["srv0"].Routes[0]
	got, ok := route.Handlers[0].(*Handler)
	if !ok {
		t.Fatalf("handler is %T", route.Handlers[0])
	}
	return ctx, got
}

// cleanUp cleans up h and its store as Caddy does when it lets go of a
// config (caddy.ProvisionContext gives no way to cancel its context).
func cleanUp(t *testing.T, h *Handler) {
	t.Helper()
	if err := h.Cleanup(); err != nil {
		t.Error(err)
	}
	if err := h.store.(caddy.CleanerUpper).Cleanup(); err != nil {
		t.Error(err)
	}
}

// TestRequestBeforeStart: Caddy starts its apps in no set order, so a
// request can reach a handler before the mfa app started it. Until then
// the store is not opened and the admin API does not list the handler;
// the request starts both, and the app's own start later is a no-op.
func TestRequestBeforeStart(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	ctx, h := provisionedNotStarted(t, store)
	defer cleanUp(t, h)
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Fatalf("store after provisioning: %v, want absent", err)
	}
	if _, hs := running.sites(); slices.Contains(hs, h) {
		t.Fatal("the admin API lists a handler that has not started")
	}

	e := &env{t: t, h: h}
	resp := e.serve(request{target: "/.mfa/", user: "alice", header: http.Header{"Accept": {"text/html"}}}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /.mfa/ before start: %d", resp.StatusCode)
	}
	if entries, err := os.ReadDir(store); err != nil || len(entries) == 0 {
		t.Fatalf("store after the first request: %d entries, %v", len(entries), err)
	}
	if _, hs := running.sites(); !slices.Contains(hs, h) {
		t.Error("the admin API does not list the handler the request started")
	}
	keys := h.keys

	app, err := ctx.App(storage.AppName)
	if err != nil {
		t.Fatal(err)
	}
	if err := app.(caddy.App).Start(); err != nil {
		t.Fatalf("mfa app start after the request: %v", err)
	}
	if string(h.keys.cookie) != string(keys.cookie) {
		t.Error("the app's start loaded the keys again")
	}
}

// TestNoStartAfterCleanup: a handler cleaned up before it started (a
// validated config) never opens its store, even if a late request
// reaches it.
func TestNoStartAfterCleanup(t *testing.T) {
	store := filepath.Join(t.TempDir(), "store")
	_, h := provisionedNotStarted(t, store)
	cleanUp(t, h) // as 'caddy validate' does once it has provisioned

	e := &env{t: t, h: h}
	resp := e.serve(request{target: "/.mfa/", user: "alice", header: http.Header{"Accept": {"text/html"}}}, nil)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("GET /.mfa/ after cleanup: %d, want 503", resp.StatusCode)
	}
	if _, err := os.Stat(store); !os.IsNotExist(err) {
		t.Fatalf("store after cleanup and a request: %v, want absent", err)
	}
}
