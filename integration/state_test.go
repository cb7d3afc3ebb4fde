package integration

import (
	"net/http"
	"testing"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// lockoutSite is a second-factor site whose mfa block locks alice after 3
// failures; tag goes to the upstream as X-Config so a test can tell which
// config served a request. secret is the secret_key line, if any.
func lockoutSite(dir string, srv *smtptest.Server, up *upstream, hash, secret, tag string) string {
	return site{
		basicAuth: hash,
		upstream:  up.addr(),
		headerUp:  "header_up X-Config " + tag,
		mfa: `		storage badger ` + dir + `
		` + secret + `
		lockout 3 15m
		users {
			alice email alice@example.com
		}
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
		}`,
	}.caddyfile()
}

// wrongCode posts a wrong code and checks it is refused with the expected
// attempts left on the challenge.
func wrongCode(t *testing.T, c *client, attemptsLeft int) {
	t.Helper()
	r := verify(t, c, "000000")
	if r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong code: status %d, want 401: %s", r.StatusCode, r.body)
	}
	st := r.json(t)
	if st["error"] != "invalid_code" || st["attempts_left"] != float64(attemptsLeft) {
		t.Fatalf("wrong code answered %v, want invalid_code with %d attempts left", st, attemptsLeft)
	}
}

// TestReloadKeepsStateOnOneBadgerDirectory reloads the config with the same
// Badger directory: the new handler shares the open database (no
// directory-lock error), the session still works, and the failure count of
// the first config adds up with the failures made under the second.
func TestReloadKeepsStateOnOneBadgerDirectory(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	hash := bcryptHash(t, alicePassword)
	dir := t.TempDir()
	secret := "secret_key " + testSecret
	startCaddy(t, lockoutSite(dir, srv, up, hash, secret, "A"))

	// Under A: one signed-in browser, and two failures from another.
	signedIn := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, signedIn, srv, 1)
	if h, ok := protected(t, signedIn, "/"); !ok || h.Get("X-Config") != "A" || h.Get("X-Mfa-User") != "alice" {
		t.Fatalf("under A: upstream reached %v, X-Config %q, X-Mfa-User %q", ok, h.Get("X-Config"), h.Get("X-Mfa-User"))
	}
	guesser := newClient(t).withBasicAuth("alice", alicePassword)
	sendCode(t, guesser, srv, 2)
	wrongCode(t, guesser, 2)
	wrongCode(t, guesser, 1)

	// B: the same directory, another upstream header.
	if err := loadCaddyfile(lockoutSite(dir, srv, up, hash, secret, "B")); err != nil {
		t.Fatalf("reloading with the same Badger directory: %v", err)
	}
	h, ok := protected(t, signedIn, "/")
	if !ok {
		t.Fatal("under B: the session from A no longer works")
	}
	if h.Get("X-Config") != "B" || h.Get("X-Mfa-User") != "alice" {
		t.Fatalf("under B: X-Config %q, X-Mfa-User %q", h.Get("X-Config"), h.Get("X-Mfa-User"))
	}

	// The challenge kept its attempts: one left, and this third failure
	// brings alice's count to the limit.
	wrongCode(t, guesser, 0)

	// A fresh flow with the right code: the fourth attempt is over the
	// limit of 3, so alice is locked and the code is refused. Had the
	// reload reset the count, this would sign in.
	late := newClient(t).withBasicAuth("alice", alicePassword)
	code := sendCode(t, late, srv, 3)
	r := verify(t, late, code)
	if r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("right code after 3 failures across a reload: status %d, want 401: %s", r.StatusCode, r.body)
	}
	// Locking revokes the sessions of the user.
	if _, ok := protected(t, signedIn, "/"); ok {
		t.Error("the session survived the lockout")
	}
}

// TestRestartKeepsCountersLockoutAndSessions stops Caddy completely (the
// Badger database is closed: another open of the directory succeeds) and
// starts it again on the same directory, twice. The session, the failure
// count, the lock and the generated secret key survive.
func TestRestartKeepsCountersLockoutAndSessions(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	hash := bcryptHash(t, alicePassword)
	dir := t.TempDir()
	// No secret_key: the key is generated and kept in the store, so the
	// cookies outlive a restart only if the store does.
	cfg := lockoutSite(dir, srv, up, hash, "", "A")
	startCaddy(t, cfg)

	signedIn := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, signedIn, srv, 1)
	guesser := newClient(t).withBasicAuth("alice", alicePassword)
	sendCode(t, guesser, srv, 2)
	wrongCode(t, guesser, 2)
	wrongCode(t, guesser, 1)
	wrongCode(t, guesser, 0) // alice: 3 failures, at the limit

	restart(t, dir, cfg)
	if h, ok := protected(t, signedIn, "/"); !ok || h.Get("X-Mfa-User") != "alice" {
		t.Fatalf("after a restart: session works %v, X-Mfa-User %q", ok, h.Get("X-Mfa-User"))
	}
	// The count survived: the right code is the fourth attempt and locks.
	late := newClient(t).withBasicAuth("alice", alicePassword)
	code := sendCode(t, late, srv, 3)
	if r := verify(t, late, code); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("right code after 3 failures before a restart: status %d, want 401: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, signedIn, "/"); ok {
		t.Error("the session survived the lockout")
	}

	// The lock survives a restart: even the right code fails.
	restart(t, dir, cfg)
	locked := newClient(t).withBasicAuth("alice", alicePassword)
	code = sendCode(t, locked, srv, 4)
	if r := verify(t, locked, code); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("right code while locked, after a restart: status %d, want 401: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, locked, "/"); ok {
		t.Error("a locked user reached the upstream")
	}
}

// restart stops Caddy, checks that the Badger directory was released and
// closed cleanly (a read-only open needs both), and loads cfg again.
func restart(t *testing.T, dir, cfg string) {
	t.Helper()
	if err := stopCaddy(); err != nil {
		t.Fatalf("stopping: %v", err)
	}
	opts := badgerdb.DefaultOptions(dir).
		WithReadOnly(true).
		WithLogger(nil).
		WithMemTableSize(1 << 20).
		WithValueThreshold(1 << 10).
		WithBlockCacheSize(1 << 20).
		WithIndexCacheSize(1 << 20)
	db, err := badgerdb.Open(opts)
	if err != nil {
		t.Fatalf("opening the Badger directory after stopping Caddy (still held, or not closed cleanly): %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("closing the read-only database: %v", err)
	}
	if err := loadCaddyfile(cfg); err != nil {
		t.Fatalf("starting again on the same directory: %v", err)
	}
}
