package storage_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/storage"
	_ "github.com/caddymfa/caddy-mfa/storage/badger"
)

func openStore(t *testing.T, spec string) storage.Store {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	st, err := storage.Open(ctx, spec)
	if err != nil {
		t.Fatalf("opening %s: %v", spec, err)
	}
	return st
}

// Copy moves every live record with its exact expiry, counters included,
// and refuses a destination that already holds state.
func TestCopy(t *testing.T) {
	ctx := t.Context()
	src := openStore(t, "badger "+t.TempDir())
	dstDir := t.TempDir()
	dst := openStore(t, `{"backend": "badger", "dir": `+quoteJSON(dstDir)+`}`)

	exp := time.Now().Add(time.Hour).Round(time.Millisecond).Add(123456 * time.Nanosecond)
	if err := src.Put(ctx, "user/alice", []byte(`{"totp":"sealed"}`), time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	if err := src.Put(ctx, "sess/abc", []byte(`{"u":"alice"}`), exp, false); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Incr(ctx, "lock/alice", 4, exp); err != nil {
		t.Fatal(err)
	}
	if err := src.Put(ctx, "chal/gone", []byte("x"), time.Now().Add(-time.Second), false); err != nil {
		t.Fatal(err)
	}

	n, err := storage.Copy(ctx, dst, src)
	if err != nil || n != 3 {
		t.Fatalf("Copy = %d, %v; want 3 live records", n, err)
	}
	for _, key := range []string{"user/alice", "sess/abc", "lock/alice"} {
		want, _ := src.Get(ctx, key)
		got, err := dst.Get(ctx, key)
		if err != nil || string(got.Value) != string(want.Value) || !got.ExpiresAt.Equal(want.ExpiresAt) {
			t.Errorf("%s: got %q %v (%v), want %q %v", key, got.Value, got.ExpiresAt, err, want.Value, want.ExpiresAt)
		}
	}
	// A copied counter counts on.
	if v, err := dst.Incr(ctx, "lock/alice", 1, time.Time{}); err != nil || v != 5 {
		t.Fatalf("copied counter: %d, %v", v, err)
	}
	if _, err := dst.Get(ctx, "chal/gone"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired record copied: %v", err)
	}

	if _, err := storage.Copy(ctx, dst, src); !errors.Is(err, storage.ErrNotEmpty) {
		t.Fatalf("second copy into a used store: %v", err)
	}
}

func TestOpenSpecs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "db")
	for _, spec := range []string{
		"badger " + dir,
		"badger " + dir + " {\n\tmin_free 128MiB\n}",
		`{"backend":"badger","dir":` + quoteJSON(dir) + `}`,
	} {
		t.Run(spec, func(t *testing.T) {
			st := openStore(t, spec)
			if l, ok := st.(storage.Locator); !ok || !strings.HasSuffix(l.Location(), "db") {
				t.Fatalf("opened %T at the wrong place", st)
			}
		})
	}
	bad := map[string]string{
		"":                             "empty store",
		"nosuch /x":                    "mfa.storage.nosuch",
		"badger /a /b":                 "wrong argument count",
		`{"dir":"/x"}`:                 `needs "backend"`,
		"badger {\n\tmin_free lots\n}": "min_free",
	}
	for spec, want := range bad {
		t.Run("bad "+spec, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			if _, err := storage.Open(ctx, spec); err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("Open(%q) = %v, want an error with %q", spec, err, want)
			}
		})
	}
}

func quoteJSON(s string) string { b, _ := json.Marshal(s); return string(b) }
