package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
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
	config := func(dir string) string { return copySite(srv, up, hash, "badger "+dir) }
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
	// The security notice of the enrollment comes first; the code is the
	// second message.
	waitMessage(t, srv, 1)
	signedIn := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, signedIn, srv, 2)
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

// copySite is the site of the copy-store tests on the store given as the
// storage directive's arguments, with no secret_key: the generated one
// moves with the state.
func copySite(srv *smtptest.Server, up *upstream, hash, store string) string {
	return site{
		basicAuth: hash,
		upstream:  up.addr(),
		mfa: `		storage ` + store + `
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

// TestCopyStoreBadgerToRedisAndBack grows a site from Badger to Redis and
// moves it back with "caddy mfa copy-store": on Redis, the session made on
// Badger still opens the site and the app enrolled on Badger signs in;
// back on Badger, the session still works and the code used on Redis
// stays spent.
func TestCopyStoreBadgerToRedisAndBack(t *testing.T) {
	rds := redistest.Start(t)
	srv := newSMTP(t)
	up := newUpstream(t)
	hash := bcryptHash(t, alicePassword)
	onBadger, onRedis, back := "badger "+t.TempDir(), "redis redis://"+rds.Addr, "badger "+t.TempDir()
	startCaddy(t, copySite(srv, up, hash, onBadger))

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
	waitMessage(t, srv, 1) // the notice of the enrollment
	signedIn := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, signedIn, srv, 2)
	if _, ok := protected(t, signedIn, "/badger"); !ok {
		t.Fatal("not signed in on Badger")
	}

	copyStore := func(from, to string) {
		t.Helper()
		if err := stopCaddy(); err != nil {
			t.Fatal(err)
		}
		out, err := mfaCLI(t, "copy-store", "--from", from, "--to", to)
		if err != nil || !strings.HasPrefix(out, "copied ") {
			t.Fatalf("copy-store --from %q --to %q: %v: %s", from, to, err, out)
		}
		t.Logf("%s → %s: %s", from, to, strings.TrimSpace(out))
		startCaddy(t, copySite(srv, up, hash, to))
	}

	copyStore(onBadger, onRedis)
	if h, ok := protected(t, signedIn, "/redis"); !ok || h.Get("X-Mfa-User") != "alice" {
		t.Fatalf("on Redis, the session made on Badger: %v %v", ok, h)
	}
	t0 := time.Now()
	code := totpref.Code(enrolled.Secret, t0, 0)
	onApp := newClient(t).withBasicAuth("alice", alicePassword)
	if r := onApp.postJSON("/.mfa/verify", map[string]string{"method": "totp", "code": code}); r.StatusCode != http.StatusOK {
		t.Fatalf("on Redis, sign-in with the app enrolled on Badger: %d %s", r.StatusCode, r.body)
	}
	// A second copy into the used Redis is refused.
	if out, err := mfaCLI(t, "copy-store", "--from", onBadger, "--to", onRedis); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("copy into a used Redis: %v: %s", err, out)
	}

	copyStore(onRedis, back)
	for _, c := range []*client{signedIn, onApp} {
		if h, ok := protected(t, c, "/back"); !ok || h.Get("X-Mfa-User") != "alice" {
			t.Fatalf("back on Badger, a session: %v %v", ok, h)
		}
	}
	// The code used on Redis is still spent; the next one signs in.
	again := newClient(t).withBasicAuth("alice", alicePassword)
	if r := again.postJSON("/.mfa/verify", map[string]string{"method": "totp", "code": code}); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("back on Badger, the code used on Redis: %d %s", r.StatusCode, r.body)
	}
	if r := again.postJSON("/.mfa/verify", map[string]string{"method": "totp", "code": totpref.Code(enrolled.Secret, t0, 1)}); r.StatusCode != http.StatusOK {
		t.Fatalf("back on Badger, the next code: %d %s", r.StatusCode, r.body)
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }
