package integration

import (
	"net/http"
	"testing"
)

// TestSignInAgainReusesLiveCode: SECURITY.md L58. Alice is sent a code,
// then starts over in a fresh browser session (signed out, cookies gone)
// within the send cooldown. Before, the new sign-in answered "Too many
// codes were requested"; now it takes over the sign-in whose code is
// still live, says when that code was sent, and the code signs her in.
// A code that was used ends its cooldown, so after a sign-in the next
// one sends a new code at once.
func TestSignInAgainReusesLiveCode(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, aliceSite(t, srv, up, aliceMFA{}))

	first := newClient(t).withBasicAuth("alice", alicePassword)
	code := sendCode(t, first, srv, 1)

	again := newClient(t).withBasicAuth("alice", alicePassword)
	r := again.postJSON("/.mfa/send", map[string]string{"method": "email"})
	st := r.json(t)
	if r.StatusCode != http.StatusOK || st["step"] != "verify" || st["sent_at"] == nil {
		t.Fatalf("sending again within the cooldown: status %d, %v; want the live code's form with when it was sent", r.StatusCode, st)
	}
	if r := verify(t, again, code); r.StatusCode != http.StatusOK || r.json(t)["step"] != "done" {
		t.Fatalf("the live code in the new session: status %d: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, again, "/page"); !ok {
		t.Fatal("not signed in with the reused code")
	}
	// The used code ended the cooldown: a third sign-in gets a new code.
	third := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, third, srv, 2)
}
