package integration

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/smallfs"
	"github.com/caddymfa/caddy-mfa/storage/badger"
)

// TestFullDiskRefusesWritesKeepsCaddyUp fills the small filesystem under a
// Badger store while Caddy serves a site: new sign-ins answer 503 (the
// store refuses writes), a signed-in user keeps working, Caddy stays up
// (without the guard, Badger's next write would end the process with
// SIGBUS), and sign-in works again once space is freed, without a restart.
func TestFullDiskRefusesWritesKeepsCaddyUp(t *testing.T) {
	dir := smallfs.Mount(t, 160<<20)
	srv := newSMTP(t)
	up := newUpstream(t)
	hash := bcryptHash(t, alicePassword)
	startCaddy(t, site{
		basicAuth: hash,
		upstream:  up.addr(),
		mfa: `		storage badger ` + dir + `
		secret_key ` + testSecret + `
		users {
			alice email alice@example.com
		}
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
		}`,
	}.caddyfile())

	signedIn := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, signedIn, srv, 1)

	filler := smallfs.Fill(t, dir, badger.DefaultMinFree-(8<<20))
	time.Sleep(1100 * time.Millisecond) // the store reads the free space once a second

	// A busy site keeps trying: every sign-in is refused with 503 and a
	// clear error, never a pass; the signed-in browser keeps working.
	for i := range 50 {
		c := newClient(t).withBasicAuth("alice", alicePassword)
		r := c.postJSON("/.mfa/send", map[string]string{"method": "email"})
		if r.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("sign-in %d on a full disk: status %d, want 503: %s", i, r.StatusCode, r.body)
		}
		if st := r.json(t); st["error"] != "unavailable" {
			t.Fatalf("sign-in %d on a full disk answered %v", i, st)
		}
		if _, ok := protected(t, signedIn, "/app"); !ok {
			t.Fatalf("request %d: the signed-in user was refused on a full disk", i)
		}
	}
	if _, ok := protected(t, newClient(t).withBasicAuth("alice", alicePassword), "/app"); ok {
		t.Fatal("a request without a session passed on a full disk")
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	again := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, again, srv, 2)
	if _, ok := protected(t, again, "/app"); !ok {
		t.Fatal("sign-in after space was freed did not open the site")
	}
}
