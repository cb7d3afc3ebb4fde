package caddyfile

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	badgerdb "github.com/dgraph-io/badger/v4"
	goredis "github.com/redis/go-redis/v9"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/storage"
)

// siteWithState is a Caddyfile whose mfa handler keeps state in three
// places under dir: the store, the email outbox and the SMS outbox. The
// secret key is generated, so it lives in the store.
func siteWithState(dir string, port int, storageLine string) string {
	if storageLine == "" {
		storageLine = "storage badger " + filepath.Join(dir, "store")
	}
	return `http://localhost:` + strconv.Itoa(port) + ` {
	basic_auth {
		alice $2a$14$R6Kogx1hR9xFOSsWit/4.uEYh6CM3QByrxh/f5HDgwESfmV9YBVoy
	}
	mfa {
		base_url http://localhost:` + strconv.Itoa(port) + `
		` + storageLine + `
		users {
			alice email alice@example.com phone +12015550123
		}
		email {
			outbox ` + filepath.Join(dir, "mailbox") + `
		}
		sms {
			provider outbox ` + filepath.Join(dir, "sms-outbox") + `
			allowed_countries US
		}
		totp {
			issuer Example
		}
	}
	respond "hello"
}`
}

// adaptConfig adapts a Caddyfile to Caddy's JSON config with the admin
// endpoint off, as the tests load it.
func adaptConfig(t *testing.T, input string) []byte {
	t.Helper()
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["admin"] = map[string]any{"disabled": true, "config": map[string]any{"persist": false}}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// validateJSON provisions and validates a JSON config as 'caddy validate'
// does.
func validateJSON(t *testing.T, raw []byte) error {
	t.Helper()
	var cfg caddy.Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}

// filesUnder lists every file and directory under dir, relative to it.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// privateCaddyDirs points Caddy's data and config directories into dir, so
// the default store and Caddy's own files stay in the test.
func privateCaddyDirs(t *testing.T, dir string) {
	t.Setenv("HOME", dir)
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
}

// TestValidateWritesNothing: validating a config (what 'caddy validate'
// runs) creates neither the store nor an outbox, not even the default
// store in Caddy's data directory; starting the same config then creates
// the store and keeps the generated secret key in it.
func TestValidateWritesNothing(t *testing.T) {
	for _, tt := range []struct {
		name         string
		defaultStore bool
	}{
		{"badger in a directory", false},
		{"default store", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			privateCaddyDirs(t, dir)
			port := redistest.FreePort(t)
			storageLine := ""
			if tt.defaultStore {
				storageLine = "# the default store, in Caddy's data directory"
			}
			raw := adaptConfig(t, siteWithState(dir, port, storageLine))
			if err := validateJSON(t, raw); err != nil {
				t.Fatalf("validate: %v", err)
			}
			if files := filesUnder(t, dir); len(files) != 0 {
				t.Fatalf("validate wrote %q", files)
			}

			if err := caddy.Load(raw, true); err != nil {
				t.Fatalf("load: %v", err)
			}
			defer func() {
				if err := caddy.Stop(); err != nil {
					t.Errorf("stop: %v", err)
				}
			}()
			store := filepath.Join(dir, "store")
			if tt.defaultStore {
				store = filepath.Join(caddy.AppDataDir(), "mfa")
			}
			if entries, err := os.ReadDir(store); err != nil || len(entries) == 0 {
				t.Fatalf("after start, store %s: %d entries, %v", store, len(entries), err)
			}
			// The outboxes are created when a first message is written.
			for _, outbox := range []string{"mailbox", "sms-outbox"} {
				if _, err := os.Stat(filepath.Join(dir, outbox)); !os.IsNotExist(err) {
					t.Errorf("%s after start: %v, want it absent until a message is sent", outbox, err)
				}
			}
			// The started site answers.
			if status, err := getSite(port); err != nil || status != http.StatusUnauthorized {
				t.Errorf("GET / without basic auth: %d, %v; want 401", status, err)
			}
		})
	}
}

// TestValidateWritesNothingToRedis: validating a config with the Redis
// store sends Redis no write (the generated secret key is stored when
// Caddy starts, not when it validates).
func TestValidateWritesNothingToRedis(t *testing.T) {
	srv := redistest.Start(t)
	dir := t.TempDir()
	privateCaddyDirs(t, dir)
	port := redistest.FreePort(t)
	raw := adaptConfig(t, siteWithState(dir, port, "storage redis redis://"+srv.Addr+"/2"))

	c := goredis.NewClient(&goredis.Options{Addr: srv.Addr, DB: 2, DisableIdentity: true})
	defer c.Close()
	ctx := context.Background()
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := validateJSON(t, raw); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if n, err := c.DBSize(ctx).Result(); err != nil || n != 0 {
		t.Fatalf("after validate: %d keys, %v; want none", n, err)
	}
	// No write reached any database: Redis counts the commands it ran.
	info, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(info, "\n") {
		if strings.HasPrefix(line, "cmdstat_") && !strings.HasPrefix(line, "cmdstat_config") && !strings.HasPrefix(line, "cmdstat_dbsize") &&
			!strings.HasPrefix(line, "cmdstat_info") && !strings.HasPrefix(line, "cmdstat_select") && !strings.HasPrefix(line, "cmdstat_hello") {
			t.Errorf("validate ran a command: %s", strings.TrimSpace(line))
		}
	}
	if files := filesUnder(t, dir); len(files) != 0 {
		t.Fatalf("validate wrote %q", files)
	}

	if err := caddy.Load(raw, true); err != nil {
		t.Fatalf("load: %v", err)
	}
	defer caddy.Stop()
	if n, err := c.DBSize(ctx).Result(); err != nil || n == 0 {
		t.Fatalf("after start: %d keys, %v; want the generated secret key", n, err)
	}
}

// TestStartFailsOnUnusableStore: a store Caddy cannot open still stops a
// real run, at start, with an error naming the directory (SECURITY.md
// J45): a file where the directory should be, or a directory another
// process holds.
func TestStartFailsOnUnusableStore(t *testing.T) {
	for _, tt := range []struct {
		name  string
		spoil func(t *testing.T, store string)
		want  string
	}{
		{"file in its place", func(t *testing.T, store string) {
			if err := os.WriteFile(store, []byte("not a directory"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, "not a directory"},
		{"locked", func(t *testing.T, store string) {
			// Badger locks the directory with flock, which a second open
			// in this process meets as another process would.
			db, err := badgerdb.Open(badgerdb.DefaultOptions(store).WithLogger(nil))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
		}, "in use by another process"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, err := filepath.EvalSymlinks(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			privateCaddyDirs(t, dir)
			store := filepath.Join(dir, "store")
			tt.spoil(t, store)
			raw := adaptConfig(t, siteWithState(dir, redistest.FreePort(t), ""))

			// Validation opens nothing, so it does not see the fault...
			if err := validateJSON(t, raw); err != nil {
				t.Fatalf("validate: %v", err)
			}
			// ...and a real run stops at start.
			err = caddy.Load(raw, true)
			if err == nil {
				caddy.Stop()
				t.Fatal("Caddy started on an unusable store")
			}
			t.Logf("load: %v", err)
			for _, want := range []string{storage.AppName + " app module: start", store, tt.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error does not mention %q", want)
				}
			}
		})
	}
}

// TestReloadSharesTheStore: a reload to a changed config on the same
// directory starts (the new config takes the open database from the old
// one), and a reload whose store cannot open leaves the running config
// serving.
func TestReloadSharesTheStore(t *testing.T) {
	dir := t.TempDir()
	privateCaddyDirs(t, dir)
	port := redistest.FreePort(t)
	site := siteWithState(dir, port, "")
	if err := caddy.Load(adaptConfig(t, site), true); err != nil {
		t.Fatalf("load: %v", err)
	}
	defer caddy.Stop()
	changed := strings.Replace(site, "issuer Example", "issuer Example2", 1)
	if err := caddy.Load(adaptConfig(t, changed), true); err != nil {
		t.Fatalf("reload on the same store: %v", err)
	}

	blocked := filepath.Join(dir, "blocked")
	if err := os.WriteFile(blocked, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(adaptConfig(t, siteWithState(dir, port, "storage badger "+blocked)), true); err == nil {
		t.Fatal("reload to an unusable store succeeded")
	}
	// Right after reloads Caddy can reset a new connection while its
	// servers change hands (about one run in 600 here): a connection
	// error is tried again, a wrong answer is not.
	status, err := getSite(port)
	for try := 0; err != nil && try < 5; try++ {
		time.Sleep(50 * time.Millisecond)
		status, err = getSite(port)
	}
	if err != nil || status != http.StatusUnauthorized {
		t.Errorf("GET / after a failed reload: %d, %v; want 401 from the running config", status, err)
	}
}

// getSite asks the site of siteWithState for / without credentials and
// returns the status.
func getSite(port int) (int, error) {
	req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1:"+strconv.Itoa(port)+"/", nil)
	if err != nil {
		return 0, err
	}
	req.Host = "localhost:" + strconv.Itoa(port)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
