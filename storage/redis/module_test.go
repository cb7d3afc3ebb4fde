package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/storage"
)

func TestModuleRegistered(t *testing.T) {
	info, err := caddy.GetModule("mfa.storage.redis")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.New().(storage.Store); !ok {
		t.Errorf("%T does not implement storage.Store", info.New())
	}
}

func TestProvisionResolves(t *testing.T) {
	t.Setenv("MFA_TEST_REDIS_URL", "redis://bob:fromurl@10.0.0.1:6380/3")
	t.Setenv("MFA_TEST_REDIS_PASSWORD", "s3cret")
	t.Setenv("MFA_TEST_REDIS_PREFIX", "site1/")
	t.Setenv("MFA_TEST_REDIS_MASTER", "mymaster")
	ca := redistest.NewTLSFiles(t).CA
	t.Setenv("MFA_TEST_REDIS_CA", ca)
	t.Setenv("MFA_TEST_REDIS_SENTINEL", "s2:26379")

	tests := []struct {
		name     string
		store    *Store
		want     config
		location string
	}{
		{
			name:     "defaults",
			want:     config{Addr: "127.0.0.1:6379", Timeout: defaultTimeout},
			location: "redis://127.0.0.1:6379/0?key_prefix=mfa%2F",
		},
		{
			name:     "url from a placeholder, password overridden",
			store:    &Store{URL: "{env.MFA_TEST_REDIS_URL}", Password: "{env.MFA_TEST_REDIS_PASSWORD}", KeyPrefix: "{env.MFA_TEST_REDIS_PREFIX}"},
			want:     config{Addr: "10.0.0.1:6380", Username: "bob", Password: "s3cret", DB: 3, Timeout: defaultTimeout},
			location: "redis://10.0.0.1:6380/3?key_prefix=site1%2F",
		},
		{
			name:     "rediss and options",
			store:    &Store{URL: "rediss://cache.internal", Username: "alice", DB: 2, Timeout: caddy.Duration(time.Second), PoolSize: 5, WaitReplicas: 1},
			want:     config{Addr: "cache.internal:6379", Username: "alice", DB: 2, TLS: true, Timeout: time.Second, PoolSize: 5, WaitReplicas: 1},
			location: "rediss://cache.internal:6379/2?key_prefix=mfa%2F",
		},
		{
			name:     "ca_file turns tls on",
			store:    &Store{URL: "redis://h:1/0", CAFile: "{env.MFA_TEST_REDIS_CA}"},
			want:     config{Addr: "h:1", TLS: true, CAFile: ca, Timeout: defaultTimeout},
			location: "rediss://h:1/0?key_prefix=mfa%2F",
		},
		{
			name:     "sentinel",
			store:    &Store{Sentinel: &Sentinel{MasterName: "{env.MFA_TEST_REDIS_MASTER}", Addresses: []string{"s1:26379", "{env.MFA_TEST_REDIS_SENTINEL}"}}, DB: 1},
			want:     config{MasterName: "mymaster", Sentinels: []string{"s1:26379", "s2:26379"}, DB: 1, Timeout: defaultTimeout},
			location: "redis+sentinel://mymaster@s1:26379,s2:26379/1?key_prefix=mfa%2F",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.store
			if s == nil {
				s = new(Store)
			}
			got, err := s.resolve()
			if err != nil {
				t.Fatal(err)
			}
			if loc := location(got, got.prefix); loc != tt.location {
				t.Errorf("location = %q, want %q", loc, tt.location)
			}
			if strings.Contains(location(got, got.prefix), "s3cret") {
				t.Error("the location holds the password")
			}
			if (got.CAFile != "") != (len(got.CAPEM) > 0) {
				t.Errorf("ca_file %q was read as %d bytes", got.CAFile, len(got.CAPEM))
			}
			got.prefix, got.CAPEM = "", nil
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("config = %+v\nwant     %+v", got, tt.want)
			}
		})
	}
}

func TestProvisionErrors(t *testing.T) {
	tests := []struct {
		name  string
		store *Store
		want  string
	}{
		{"url and sentinel", &Store{URL: "redis://h", Sentinel: &Sentinel{MasterName: "m", Addresses: []string{"s:1"}}}, "exclusive"},
		{"sentinel without master", &Store{Sentinel: &Sentinel{Addresses: []string{"s:1"}}}, "master name"},
		{"sentinel without addresses", &Store{Sentinel: &Sentinel{MasterName: "m"}}, "sentinel address"},
		{"sentinel address without port", &Store{Sentinel: &Sentinel{MasterName: "m", Addresses: []string{"s"}}}, "host:port"},
		{"bad scheme", &Store{URL: "http://h"}, "redis:// or rediss://"},
		{"db twice", &Store{URL: "redis://h/1", DB: 2}, "differs"},
		{"unset placeholder", &Store{URL: "redis://h", Password: "{env.MFA_TEST_UNSET_VARIABLE}"}, "resolving password"},
		{"negative timeout", &Store{Timeout: -1}, "timeout"},
		{"negative pool size", &Store{PoolSize: -1}, "pool_size"},
		{"negative db", &Store{DB: -1}, "db"},
		{"empty prefix from a placeholder", &Store{KeyPrefix: "{env.MFA_TEST_EMPTY}"}, "key_prefix"},
		{"missing ca file", &Store{CAFile: "/nonexistent/ca.pem"}, "reading ca_file"},
	}
	t.Setenv("MFA_TEST_EMPTY", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.store
			err := s.Provision(caddyContext(t))
			defer s.Cleanup()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one mentioning %q", err, tt.want)
			}
			if _, err := s.Get(context.Background(), "k"); !errors.Is(err, storage.ErrClosed) {
				t.Errorf("Get after failed Provision: err = %v, want ErrClosed", err)
			}
		})
	}
}

func TestReloadSharesOneClient(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)

	// A reload provisions the new config's store before cleaning up the
	// old one: both use one client, which the last Cleanup closes.
	old := &Store{URL: "redis://" + srv.Addr, KeyPrefix: "reload/"}
	if err := old.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Incr(ctx, "lock/alice", 3, time.Time{}); err != nil {
		t.Fatal(err)
	}
	next := provision(t, &Store{URL: "redis://" + srv.Addr, KeyPrefix: "reload/"})
	if old.client != next.client {
		t.Fatal("the new store made a second client")
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Get(ctx, "lock/alice"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("old store after Cleanup: err = %v, want ErrClosed", err)
	}
	if n, err := next.Incr(ctx, "lock/alice", 1, time.Time{}); err != nil || n != 4 {
		t.Errorf("new store Incr = %d, %v; want 4", n, err)
	}
}

func TestClosedStoreFailsClosed(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	provisioned := &Store{URL: "redis://" + srv.Addr}
	if err := provisioned.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // Cleanup is idempotent
		if err := provisioned.Cleanup(); err != nil {
			t.Fatalf("Cleanup #%d: %v", i+1, err)
		}
	}

	stores := []struct {
		name string
		s    *Store
	}{
		{"after Cleanup", provisioned},
		{"never provisioned", new(Store)},
	}
	for _, st := range stores {
		for _, m := range methods(ctx) {
			t.Run(st.name+"/"+m.name, func(t *testing.T) {
				if err := m.call(st.s); !errors.Is(err, storage.ErrClosed) {
					t.Errorf("err = %v, want ErrClosed", err)
				}
			})
		}
	}
}

// methods calls every Store method once.
func methods(ctx context.Context) []struct {
	name string
	call func(s *Store) error
} {
	update := func(storage.Record, bool) ([]byte, time.Time, storage.Op, error) {
		return []byte("x"), time.Time{}, storage.Write, nil
	}
	return []struct {
		name string
		call func(s *Store) error
	}{
		{"Get", func(s *Store) error { _, err := s.Get(ctx, "k"); return err }},
		{"Put", func(s *Store) error { return s.Put(ctx, "p", []byte("v"), time.Time{}, false) }},
		{"Put durable", func(s *Store) error { return s.Put(ctx, "p", []byte("v"), time.Time{}, true) }},
		{"Delete", func(s *Store) error { return s.Delete(ctx, "k") }},
		{"Update", func(s *Store) error { return s.Update(ctx, "u", update) }},
		{"Incr", func(s *Store) error { _, err := s.Incr(ctx, "k", 1, time.Time{}); return err }},
		{"List", func(s *Store) error { _, err := s.List(ctx, "", 0, false); return err }},
		{"DeletePrefix", func(s *Store) error { return s.DeletePrefix(ctx, "x/") }},
	}
}

func TestCleanupDuringUse(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := &Store{URL: "redis://" + srv.Addr, KeyPrefix: uniquePrefix()}
	if err := s.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}

	// Calls racing with the last Cleanup either finish or fail with
	// ErrClosed; none reaches the closed client.
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			<-start
			for j := range 30 {
				key := fmt.Sprintf("thr/%d", i)
				var err error
				switch j % 3 {
				case 0:
					_, err = s.Incr(ctx, key, 1, time.Time{})
				case 1:
					_, err = s.List(ctx, "thr/", 0, j%2 == 0)
				case 2:
					err = s.Put(ctx, key+"/p", []byte("v"), time.Time{}, true)
				}
				if err != nil && !errors.Is(err, storage.ErrClosed) {
					t.Errorf("err = %v, want nil or ErrClosed", err)
				}
			}
		})
	}
	close(start)
	if err := s.Cleanup(); err != nil {
		t.Error(err)
	}
	wg.Wait()
}

// TestServerDownFailsClosedAndRecovers is the store's part of SECURITY.md
// M60: with Redis down every call fails quickly with an error (the caller
// denies), and the same Store serves again once Redis is back.
func TestServerDownFailsClosedAndRecovers(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t, "appendonly yes", "appendfsync always")
	s := provision(t, &Store{URL: "redis://" + srv.Addr, KeyPrefix: uniquePrefix(), Timeout: caddy.Duration(time.Second)})
	if err := s.Put(ctx, "user/alice", []byte("enrolled"), time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "lock/alice", 2, time.Time{}); err != nil {
		t.Fatal(err)
	}

	srv.Kill()
	for _, m := range methods(ctx) {
		t.Run("down/"+m.name, func(t *testing.T) {
			start := time.Now()
			err := m.call(s)
			if err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrClosed) {
				t.Errorf("err = %v, want a connection error", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v to fail", d)
			}
		})
	}

	// The same Store serves again once the server is back, with the state
	// its append-only file kept.
	srv.Restart()
	rec, err := s.Get(ctx, "user/alice")
	if err != nil || string(rec.Value) != "enrolled" {
		t.Errorf("Get after restart = %q, %v; want enrolled", rec.Value, err)
	}
	if n, err := s.Incr(ctx, "lock/alice", 1, time.Time{}); err != nil || n != 3 {
		t.Errorf("Incr after restart = %d, %v; want 3", n, err)
	}
	for _, m := range methods(ctx) {
		if err := m.call(s); err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s after restart: %v", m.name, err)
		}
	}
}

func TestServerHangingTimesOut(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := provision(t, &Store{URL: "redis://" + srv.Addr, KeyPrefix: uniquePrefix(), Timeout: caddy.Duration(300 * time.Millisecond)})
	if err := s.Put(ctx, "k", []byte("v"), time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	defer srv.Resume()
	start := time.Now()
	_, err := s.Get(ctx, "k")
	if err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get on a hanging server: err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Get took %v, want about the 300ms timeout", d)
	}

	t.Run("a caller queued behind a hanging Update gives up with its context", func(t *testing.T) {
		keep := func(storage.Record, bool) ([]byte, time.Time, storage.Op, error) {
			return nil, time.Time{}, storage.Keep, nil
		}
		first := make(chan error, 1)
		go func() { first <- s.Update(ctx, "k", keep) }()
		slot := s.client.locks.slots[maphash.String(s.client.locks.seed, s.prefix+"k")%keyLockSlots]
		for len(slot) == 0 {
			runtime.Gosched()
		}
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := s.Update(short, "k", keep); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("queued Update: err = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 250*time.Millisecond {
			t.Errorf("queued Update took %v, want about 50ms", d)
		}
		if err := <-first; err == nil {
			t.Error("the Update on the hanging server succeeded")
		}
	})

	srv.Resume()
	if _, err := s.Get(ctx, "k"); err != nil {
		t.Errorf("Get after the server answers again: %v", err)
	}
}
