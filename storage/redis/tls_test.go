package redis

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/storage"
	"github.com/caddymfa/caddy-mfa/storage/storetest"
	"github.com/caddyserver/caddy/v2"
)

func TestTLSWithACLUser(t *testing.T) {
	ctx := context.Background()
	files := redistest.NewTLSFiles(t)
	config := append(files.Config(),
		"user default off",
		"user alice on >secret ~* +@all",
	)
	srv := redistest.Start(t, config...)
	t.Setenv("MFA_TEST_REDIS_PASSWORD", "secret")
	url := "rediss://" + srv.Addr

	t.Run("ca file and credentials", func(t *testing.T) {
		s := provision(t, &Store{
			URL:       url,
			CAFile:    files.CA,
			Username:  "alice",
			Password:  "{env.MFA_TEST_REDIS_PASSWORD}",
			KeyPrefix: uniquePrefix(),
		})
		if err := s.Put(ctx, "user/alice", []byte("enrolled"), time.Time{}, true); err != nil {
			t.Fatal(err)
		}
		if n, err := s.Incr(ctx, "lock/alice", 1, time.Now().Add(time.Minute)); err != nil || n != 1 {
			t.Fatalf("Incr = %d, %v", n, err)
		}
		rec, err := s.Get(ctx, "user/alice")
		if err != nil || string(rec.Value) != "enrolled" {
			t.Errorf("Get = %q, %v", rec.Value, err)
		}
	})

	t.Run("credentials in the url", func(t *testing.T) {
		s := provision(t, &Store{URL: "rediss://alice:secret@" + srv.Addr + "/1", CAFile: files.CA, KeyPrefix: uniquePrefix()})
		if err := s.Put(ctx, "k", []byte("v"), time.Time{}, false); err != nil {
			t.Fatal(err)
		}
	})

	failures := []struct {
		name  string
		store *Store
		want  string
	}{
		{"wrong password", &Store{URL: url, CAFile: files.CA, Username: "alice", Password: "wrong"}, "WRONGPASS"},
		{"default user is off", &Store{URL: url, CAFile: files.CA}, "NOAUTH"},
		{"unknown CA", &Store{URL: url, Username: "alice", Password: "secret"}, "certificate"},
		{"plain text to a TLS port", &Store{URL: "redis://alice:secret@" + srv.Addr, Timeout: caddy.Duration(500 * time.Millisecond)}, ""},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.store
			s.KeyPrefix = uniquePrefix()
			provision(t, s)
			start := time.Now()
			_, err := s.Get(ctx, "k")
			if err == nil || errors.Is(err, storage.ErrNotFound) {
				t.Fatalf("err = %v, want a refusal", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one mentioning %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("err %q shows the password", err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v to fail", d)
			}
		})
	}
}

// leastACL is the documented least-privilege ACL rule of the store's user
// (see doc.go), with "~test*" for the tests' key prefixes.
const leastACL = "user caddy on >pw resetkeys ~test* -@all +get +set +del +exists +mget +zadd +zrem +zrange +eval +evalsha +wait +ping +select +hello +auth"

func TestLeastPrivilegeACL(t *testing.T) {
	srv := redistest.Start(t, "user default off", leastACL)
	storetest.Run(t, func(tb testing.TB, now func() time.Time) storage.Store {
		s := &Store{URL: "redis://caddy:pw@" + srv.Addr, KeyPrefix: uniquePrefix()}
		if now != nil {
			s.now = now
		}
		return provision(tb, s)
	})

	// Keys outside the user's pattern are refused: the ACL confines the
	// store to its prefix.
	s := provision(t, &Store{URL: "redis://caddy:pw@" + srv.Addr, KeyPrefix: "other/"})
	if err := s.Put(context.Background(), "k", []byte("v"), time.Time{}, false); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("Put outside the ACL's keys: err = %v, want NOPERM", err)
	}
}
