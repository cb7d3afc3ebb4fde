package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// TestCopyStoreKeepsSessionsAndEnrollments moves a site's state with
// "caddy mfa copy-store" while Caddy is stopped: after a restart on the
// new store, the session made before still opens the site, the app
// enrolled before still signs in, and no secret_key is in the config (the
// generated one moves with the state).
func TestCopyStoreKeepsSessionsAndEnrollments(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	hash := bcryptHash(t, alicePassword)
	config := func(dir string) string {
		return site{
			basicAuth: hash,
			upstream:  up.addr(),
			mfa: `		storage badger ` + dir + `
		users {
			alice email alice@example.com
		}
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
		}
		totp {
			issuer Example
		}`,
		}.caddyfile()
	}
	from, to := t.TempDir(), t.TempDir()
	startCaddy(t, config(from))

	out, err := mfaCLI(t, "enroll", "alice")
	if err != nil {
		t.Fatalf("caddy mfa enroll: %v: %s", err, out)
	}
	var enrolled struct {
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal([]byte(out), &enrolled); err != nil || enrolled.Secret == "" {
		t.Fatalf("enroll output: %v: %s", err, out)
	}
	signedIn := newClient(t).withBasicAuth("alice", alicePassword)
	signInByEmail(t, signedIn, srv)
	if _, ok := protected(t, signedIn, "/before"); !ok {
		t.Fatal("not signed in before the copy")
	}

	if err := stopCaddy(); err != nil {
		t.Fatal(err)
	}
	out, err = mfaCLI(t, "copy-store", "--from", "badger "+from, "--to", `{"backend": "badger", "dir": `+quote(to)+`}`)
	if err != nil || !strings.HasPrefix(out, "copied ") {
		t.Fatalf("copy-store: %v: %s", err, out)
	}
	// The destination now holds state: a second copy is refused.
	if out, err := mfaCLI(t, "copy-store", "--from", "badger "+from, "--to", "badger "+to); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("copy into a used store: %v: %s", err, out)
	}

	startCaddy(t, config(to))
	if h, ok := protected(t, signedIn, "/after"); !ok || h.Get("X-Mfa-User") != "alice" {
		t.Fatalf("the session made before the copy: %v %v", ok, h)
	}
	fresh := newClient(t).withBasicAuth("alice", alicePassword)
	r := fresh.postJSON("/.mfa/verify", map[string]string{"method": "totp", "code": totpref.Code(enrolled.Secret, time.Now(), 0)})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("sign-in with the app enrolled before the copy: %d %s", r.StatusCode, r.body)
	}
}

// signInByEmail signs c in with an emailed code when the user also has an
// app (the choose step), using the first code mailed after the request: a
// notice still on its way may arrive before it.
func signInByEmail(t *testing.T, c *client, srv *smtptest.Server) {
	t.Helper()
	signInByCode(t, c, srv, false)
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
