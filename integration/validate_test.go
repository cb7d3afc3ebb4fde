package integration

import (
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// validateCaddyfile is a site whose state goes to three places relative to
// Caddy's working directory: the store, the email outbox and the SMS
// outbox. The secret key is generated, so it is kept in the store.
func validateCaddyfile(port int) string {
	return `http://localhost:` + strconv.Itoa(port) + ` {
	basic_auth {
		alice $2a$14$R6Kogx1hR9xFOSsWit/4.uEYh6CM3QByrxh/f5HDgwESfmV9YBVoy
	}
	mfa {
		storage badger ./store
		users {
			alice email alice@example.com phone +12015550123
		}
		email {
			outbox ./mailbox
		}
		sms {
			provider outbox ./sms-outbox
			allowed_countries US
		}
	}
	respond "hello"
}
`
}

// caddyCommand runs the built caddy with args in dir, Caddy's data and
// config directories under home, and returns its combined output.
func caddyCommand(t *testing.T, dir, home string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home, "XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestCaddyValidateWritesNothing runs the built binary: 'caddy validate'
// accepts the config and leaves the directory as it was (no store, no
// outbox, nothing in Caddy's data directory); 'caddy run' with a file
// where the store's directory should be stops at start and names it.
func TestCaddyValidateWritesNothing(t *testing.T) {
	dir, home := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(validateCaddyfile(freePort(t))), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := caddyCommand(t, dir, home, "validate", "--config", "Caddyfile", "--adapter", "caddyfile")
	if err != nil {
		t.Fatalf("caddy validate: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Valid configuration") {
		t.Errorf("caddy validate said:\n%s", out)
	}
	for _, d := range []string{dir, home} {
		var wrote []string
		_ = filepath.WalkDir(d, func(p string, _ fs.DirEntry, err error) error {
			if err == nil && p != d && p != filepath.Join(dir, "Caddyfile") {
				wrote = append(wrote, p)
			}
			return nil
		})
		if len(wrote) > 0 {
			t.Errorf("caddy validate wrote %q", wrote)
		}
	}

	// A real run opens the store when it starts, and stops there if it
	// cannot.
	if err := os.WriteFile(filepath.Join(dir, "store"), []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = caddyCommand(t, dir, home, "run", "--config", "Caddyfile", "--adapter", "caddyfile")
	if err == nil {
		t.Fatalf("caddy run started on an unusable store:\n%s", out)
	}
	if !strings.Contains(out, "mfa app module: start") || !strings.Contains(out, "not a directory") {
		t.Errorf("caddy run does not say the store failed at start:\n%s", out)
	}
	resolved, _ := filepath.EvalSymlinks(dir)
	if !strings.Contains(out, filepath.Join(dir, "store")) && !strings.Contains(out, filepath.Join(resolved, "store")) {
		t.Errorf("caddy run does not name the store's directory:\n%s", out)
	}
}
