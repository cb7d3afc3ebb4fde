package integration

import (
	"net/http"
	"testing"
)

// TestFirstFactorIdentitiesAreExact: SECURITY.md K51 (and D24). Three
// basic_auth accounts whose names differ only by case and Unicode width,
// "alice", "Alice" and "ａｌｉｃｅ", are three MFA users: each has its own
// address, its own session and its own placeholder value, and a session
// of one is refused for the others. Before identities were exact, all
// three became "alice": they shared her address and her session, and
// {http.auth.mfa.user} said "alice" for each.
func TestFirstFactorIdentitiesAreExact(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	hash := bcryptHash(t, alicePassword)
	startCaddy(t, globalOptions("")+siteURL+` {
	basic_auth {
		alice `+hash+`
		Alice `+hash+`
		ａｌｉｃｅ `+hash+`
	}
	mfa {
		storage badger `+t.TempDir()+`
		secret_key `+testSecret+`
		users {
			alice email alice@example.com
			Alice email capital@example.com
		}
		email {
			`+smtpBlock(srv, "starttls")+`
			from "Example <noreply@example.com>"
			`+relaxedThrottle+`
		}
	}
	reverse_proxy `+up.addr()+` {
		header_up X-Mfa-User {http.auth.mfa.user}
	}
}
`)

	lower := newClient(t).withBasicAuth("alice", alicePassword)
	if st := lower.state(); st["destination"] != "a***@e***.com" {
		t.Fatalf("alice's destination %v, want a***@e***.com", st["destination"])
	}
	upper := newClient(t).withBasicAuth("Alice", alicePassword)
	if st := upper.state(); st["destination"] != "c***@e***.com" {
		t.Fatalf("Alice's destination %v, want her own address c***@e***.com, not alice's", st["destination"])
	}
	wide := newClient(t).withBasicAuth("ａｌｉｃｅ", alicePassword)
	if r := wide.postJSON("/.mfa/send", map[string]string{"method": "email"}); r.StatusCode == http.StatusOK {
		t.Fatalf("ａｌｉｃｅ, who has no address, was sent a code (to alice's address?): %s", r.body)
	}

	signIn(t, lower, srv, 1)
	if m := waitMessage(t, srv, 1); m.To[0] != "alice@example.com" {
		t.Fatalf("alice's code went to %v", m.To)
	}
	signIn(t, upper, srv, 2)
	if m := waitMessage(t, srv, 2); m.To[0] != "capital@example.com" {
		t.Fatalf("Alice's code went to %v, want capital@example.com", m.To)
	}
	for _, tc := range []struct {
		c    *client
		want string
	}{{lower, "alice"}, {upper, "Alice"}} {
		h, ok := protected(t, tc.c, "/page")
		if !ok {
			t.Fatalf("%s: refused after signing in", tc.want)
		}
		if got := h.Get("X-Mfa-User"); got != tc.want {
			t.Errorf("{http.auth.mfa.user} = %q, want %q exactly", got, tc.want)
		}
	}

	// alice's session, presented with the other accounts' credentials,
	// opens nothing: the session is bound to the exact first-factor name.
	for _, name := range []string{"Alice", "ａｌｉｃｅ", " alice"} {
		lower.withBasicAuth(name, alicePassword)
		if _, ok := protected(t, lower, "/page"); ok {
			t.Errorf("alice's session let %q through", name)
		}
	}
	lower.withBasicAuth("alice", alicePassword)
	if _, ok := protected(t, lower, "/page"); !ok {
		t.Fatal("alice's own session no longer works")
	}
}
