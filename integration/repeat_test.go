package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestRepeatedCodeAfterSuccess: SECURITY.md K53. Right after a code signed
// alice in, the same code from the same flow (a double click: the second
// request still carries the flow cookie; and a client that retries later,
// whose flow cookie is gone) answers as the success did, counts no
// failure and makes no second session. Twenty repeats, twice the lockout,
// neither lock alice out nor end her session. Before, each repeat counted
// as a failure, and the eleventh locked her and ended the session just
// made.
func TestRepeatedCodeAfterSuccess(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, aliceSite(t, srv, up, aliceMFA{top: "lockout 10 15m", email: relaxedThrottle}))

	c := newClient(t).withBasicAuth("alice", alicePassword)
	code := sendCode(t, c, srv, 1)
	csrf, _ := c.state()["csrf_token"].(string)
	u, _ := url.Parse(siteURL)
	var cookies []string
	for _, ck := range c.hc.Jar.Cookies(u) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	// The second click of a double click: the cookies of before the first
	// answer, sent without a jar.
	second := newClient(t).withBasicAuth("alice", alicePassword)
	second.hc.Jar = nil
	second.header.Set("Cookie", strings.Join(cookies, "; "))
	body, _ := json.Marshal(map[string]string{"method": "email", "code": code, "csrf_token": csrf})
	post := func(cl *client) *response {
		req := cl.newRequest(http.MethodPost, "/.mfa/verify", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		return cl.do(req)
	}

	if r := post(c); r.StatusCode != http.StatusOK || r.json(t)["step"] != "done" {
		t.Fatalf("verify: status %d: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, c, "/page"); !ok {
		t.Fatal("not signed in")
	}
	for i := range 20 {
		cl := second
		if i%2 == 1 {
			cl = c // the retrying client: its flow cookie is gone
		}
		r := post(cl)
		if r.StatusCode != http.StatusOK || r.json(t)["step"] != "done" {
			t.Fatalf("repeat %d: status %d, want the success again: %s", i, r.StatusCode, r.body)
		}
		for _, ck := range r.Cookies() {
			if strings.HasPrefix(ck.Name, "mfa_session-") && ck.MaxAge >= 0 {
				t.Fatalf("repeat %d made another session", i)
			}
		}
	}
	if _, ok := protected(t, c, "/page"); !ok {
		t.Fatal("the repeats ended alice's session")
	}
	// Not locked: a new sign-in works at once.
	fresh := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, fresh, srv, 2)
	// A wrong code in a flow is still an attempt like any other.
	other := newClient(t).withBasicAuth("alice", alicePassword)
	right := sendCode(t, other, srv, 3)
	wrong := "000000"
	if right == wrong {
		wrong = "111111"
	}
	if r := verify(t, other, wrong); r.StatusCode != http.StatusUnauthorized || r.json(t)["attempts_left"] != 2.0 {
		t.Fatalf("a wrong code: status %d: %s", r.StatusCode, r.body)
	}
}
