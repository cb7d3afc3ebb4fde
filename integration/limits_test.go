package integration

import (
	"net/http"
	"strconv"
	"testing"
)

// standaloneFrom starts a standalone sign-in of username from a fresh
// browser at ip (behind the trusted local proxy) and returns it.
func standaloneFrom(t *testing.T, username, ip string) *client {
	t.Helper()
	c := newClient(t)
	c.header.Set("X-Forwarded-For", ip)
	if r := c.postJSON("/.mfa/identify", map[string]string{"username": username}); r.StatusCode != http.StatusOK {
		t.Fatalf("identify %s from %s: status %d: %s", username, ip, r.StatusCode, r.body)
	}
	return c
}

// TestStandaloneAttackerCannotLockOutUser (SECURITY.md L54): a scripted
// attacker naming bob from one address range, again and again, with
// wrong codes, locks that range out for bob; bob, signed in from another
// range, keeps his session and signs in again at once.
func TestStandaloneAttackerCannotLockOutUser(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, standaloneSite(t, trustLocalProxy, smtpBlock(srv, "starttls"), relaxedThrottle, up))
	const user, home = "bob@example.com", "198.51.100.7"

	n := 1
	bob := standaloneFrom(t, user, home)
	if r := verify(t, bob, waitMessage(t, srv, n).code(t)); r.StatusCode != http.StatusOK {
		t.Fatalf("bob's sign-in: status %d: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, bob, "/"); !ok {
		t.Fatal("bob's session does not reach the upstream")
	}

	// The attacker: 5 rounds of 3 wrong codes from 203.0.113.0/24, over
	// the lockout of 10.
	for i := range 5 {
		n++
		c := standaloneFrom(t, user, "203.0.113."+strconv.Itoa(10+i))
		waitMessage(t, srv, n)
		for range 3 {
			if r := verify(t, c, "000000"); r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("attacker's guess: status %d", r.StatusCode)
			}
		}
	}
	// From the attacker's range even the right code is refused now.
	n++
	c := standaloneFrom(t, user, "203.0.113.99")
	if r := verify(t, c, waitMessage(t, srv, n).code(t)); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("right code from the locked range: status %d, want 401", r.StatusCode)
	}

	if _, ok := protected(t, bob, "/"); !ok {
		t.Fatal("the attack ended bob's session")
	}
	n++
	again := standaloneFrom(t, user, home)
	if r := verify(t, again, waitMessage(t, srv, n).code(t)); r.StatusCode != http.StatusOK {
		t.Fatalf("bob signing in again from home: status %d: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, again, "/"); !ok {
		t.Fatal("bob's new session does not reach the upstream")
	}
}
