package integration

import (
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestStandaloneSignIn signs in without a first factor: the visitor names
// an address allowed by allow_emails, the code arrives by mail
// (asynchronously), and the upstream learns who signed in through
// {http.auth.mfa.user} and {http.auth.user.id}. An address outside
// allow_emails gets the same answer and no mail (SECURITY.md H37, I38).
func TestStandaloneSignIn(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, standaloneSite(t, "", smtpBlock(srv, "starttls"), relaxedThrottle, up))

	const target = "/docs/page?a=1"
	c := newClient(t)
	r := c.get(target, "text/html")
	loc := r.Header.Get("Location")
	if r.StatusCode != http.StatusFound || loc != "/.mfa/?return="+url.QueryEscape(target) {
		t.Fatalf("GET %s: status %d, Location %q", target, r.StatusCode, loc)
	}
	if r := c.get(target, "application/json"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET %s as a script: status %d, want 401", target, r.StatusCode)
	}
	c.get(loc, "text/html")
	if st := c.state(); st["step"] != "identify" {
		t.Fatalf("step %v, want identify: %v", st["step"], st)
	}

	r = c.postJSON("/.mfa/identify", map[string]string{"username": " Bob@Example.COM "})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("identify: status %d: %s", r.StatusCode, r.body)
	}
	if st := r.json(t); st["step"] != "verify" || st["destination"] != "b***@e***.com" {
		t.Fatalf("identify answered %v, want the verify step for b***@e***.com", st)
	}
	m := waitMessage(t, srv, 1)
	if len(m.To) != 1 || m.To[0] != "bob@example.com" {
		t.Fatalf("RCPT TO %q, want exactly bob@example.com", m.To)
	}
	r = verify(t, c, m.code(t))
	if r.StatusCode != http.StatusOK {
		t.Fatalf("verify: status %d: %s", r.StatusCode, r.body)
	}
	if st := r.json(t); st["step"] != "done" || st["redirect"] != target {
		t.Fatalf("verify answered %v, want done with redirect %s", st, target)
	}

	h, ok := protected(t, c, target)
	if !ok {
		t.Fatal("the session does not reach the upstream")
	}
	for name, want := range map[string]string{"X-Mfa-User": "bob@example.com", "X-User-Id": "bob@example.com", "X-Mfa-Method": "email"} {
		if got := h.Get(name); got != want {
			t.Errorf("upstream saw %s %q, want %q", name, got, want)
		}
	}
	for _, ck := range up.last(t).Cookies() {
		if strings.HasPrefix(ck.Name, "mfa_") {
			t.Errorf("the upstream received the %s cookie", ck.Name)
		}
	}

	// Allowed and not allowed: the same answer, but mail only for one.
	_, allowedResp := identifyFresh(t, "carol@example.com")
	outsider, outsiderResp := identifyFresh(t, "eve@evil.example")
	if allowedResp.StatusCode != outsiderResp.StatusCode {
		t.Errorf("status %d for an allowed address, %d for another", allowedResp.StatusCode, outsiderResp.StatusCode)
	}
	a, o := allowedResp.json(t), outsiderResp.json(t)
	if ae, oe := a["expires_in"].(float64), o["expires_in"].(float64); ae-oe > 1 || oe-ae > 1 {
		t.Errorf("expires_in %v for an allowed address, %v for another", ae, oe)
	}
	// Only the CSRF token, the echo of what each typed and the second
	// the clock may have moved may differ.
	for _, m := range []map[string]any{a, o} {
		delete(m, "csrf_token")
		delete(m, "user")
		delete(m, "destination")
		delete(m, "expires_in")
	}
	if a["step"] != "verify" || a["attempts_left"] == nil {
		t.Errorf("identify answered %v, want the verify step with attempts left", a)
	}
	if !reflect.DeepEqual(a, o) {
		t.Errorf("the answers differ:\nallowed:  %v\noutsider: %v", a, o)
	}
	if a, o := cookieNames(allowedResp), cookieNames(outsiderResp); strings.Join(a, ",") != strings.Join(o, ",") {
		t.Errorf("cookies %v for an allowed address, %v for another", a, o)
	}
	if r := verify(t, outsider, "123456"); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("verify for the outsider: status %d, want 401", r.StatusCode)
	}
	if _, ok := protected(t, outsider, "/"); ok {
		t.Error("the outsider reached the upstream")
	}

	// One more allowed sign-in after the outsider's, so the outsider's mail,
	// had there been one, would have been queued before it.
	identifyFresh(t, "dave@example.com")
	msgs := srv.WaitMessages(3, 15*time.Second)
	if len(msgs) != 3 {
		t.Fatalf("the SMTP server received %d messages, want 3", len(msgs))
	}
	var to []string
	for _, m := range msgs {
		to = append(to, m.To...)
	}
	sort.Strings(to)
	if got := strings.Join(to, " "); got != "bob@example.com carol@example.com dave@example.com" {
		t.Errorf("recipients %s, want bob, carol and dave at example.com only", got)
	}
}

// identifyFresh starts a standalone sign-in for username from a new
// browser and returns it with the identify answer.
func identifyFresh(t *testing.T, username string) (*client, *response) {
	t.Helper()
	c := newClient(t)
	r := c.postJSON("/.mfa/identify", map[string]string{"username": username})
	return c, r
}

func cookieNames(r *response) []string {
	var names []string
	for _, c := range r.Cookies() {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	return names
}
