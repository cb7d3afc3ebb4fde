package caddymfa

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
)

// storedSessions counts the session records in the store and the entries
// of the user's index of sessions.
func (e *env) storedSessions(user string) (records, indexed int) {
	e.t.Helper()
	recs, err := e.h.store.List(e.t.Context(), keySession, 0, false)
	if err != nil {
		e.t.Fatal(err)
	}
	idx, err := e.h.sessions.index.entries(e.t.Context(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	return len(recs), len(idx)
}

// The check of a code writes the session it starts in its own store
// operation, and only when the code is right: a wrong code, and the right
// code of a locked user, write no session and no index entry (SECURITY.md
// A2, A4); a right code writes the session and its index entry, and the
// cookie works; the per-user cap still ends the oldest sessions.
func TestCodeCheckWritesSessionOnlyOnSuccess(t *testing.T) {
	h, outbox := testConfig(t)
	h.User = new(string)
	h.TOTP = &totp.Config{Issuer: "Example"}
	h.Lockout = &Lockout{Failures: 3}
	e := newEnv(t, h, outbox)
	secret := e.enrollStandaloneApp("alice")

	identify := func(ip string) (*browser, string) {
		b := e.browser("")
		b.ip = ip
		st, ans := b.step("/identify", b.state()["csrf_token"].(string), map[string]string{"username": "alice"})
		if st != http.StatusOK {
			t.Fatalf("identify: status %d %v", st, ans)
		}
		return b, ans["csrf_token"].(string)
	}
	verify := func(b *browser, csrf, code string) int {
		st, _ := b.step("/verify", csrf, map[string]string{"method": methodTOTP, "code": code})
		return st
	}

	// A wrong code.
	b, csrf := identify("203.0.113.5")
	if st := verify(b, csrf, "000000"); st == http.StatusOK {
		t.Fatal("a wrong code succeeded")
	}
	if recs, idx := e.storedSessions("alice"); recs != 0 || idx != 0 {
		t.Fatalf("after a wrong code: %d sessions, %d indexed", recs, idx)
	}

	// A right code: the session, indexed, and its cookie works.
	e.clock.add(30 * time.Second)
	b, csrf = identify("203.0.113.5")
	if st := verify(b, csrf, e.code(secret, 0)); st != http.StatusOK {
		t.Fatalf("right code: status %d", st)
	}
	if recs, idx := e.storedSessions("alice"); recs != 1 || idx != 1 {
		t.Fatalf("after a right code: %d sessions, %d indexed", recs, idx)
	}
	b.protected()
	first := b

	// Locked for a network: its right code writes nothing.
	e.clock.add(30 * time.Second)
	for range 3 {
		b, csrf = identify("198.51.100.7")
		verify(b, csrf, "000000")
	}
	b, csrf = identify("198.51.100.7")
	if st := verify(b, csrf, e.code(secret, 0)); st == http.StatusOK {
		t.Fatal("a locked user's right code succeeded")
	}
	if recs, idx := e.storedSessions("alice"); recs != 1 || idx != 1 {
		t.Fatalf("after a locked user's right code: %d sessions, %d indexed", recs, idx)
	}

	// The cap: maxUserSessions more sign-ins end the first session.
	for i := range maxUserSessions {
		e.clock.add(30 * time.Second)
		b, csrf = identify("203.0.113.5")
		if st := verify(b, csrf, e.code(secret, 0)); st != http.StatusOK {
			t.Fatalf("sign-in %d: status %d", i+2, st)
		}
	}
	if recs, idx := e.storedSessions("alice"); recs != maxUserSessions || idx != maxUserSessions {
		t.Fatalf("after %d sign-ins: %d sessions, %d indexed; want %d", maxUserSessions+1, recs, idx, maxUserSessions)
	}
	resp := first.do(request{target: "/app", header: http.Header{"Accept": {"text/html"}}})
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("the session the cap ended still reaches the upstream")
	}
}
