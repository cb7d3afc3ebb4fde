package integration

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
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
	// The address typed is shown back in full, to this client only.
	if st := r.json(t); st["step"] != "verify" || st["destination"] != "bob@example.com" {
		t.Fatalf("identify answered %v, want the verify step for the address typed", st)
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

// TestStandaloneTypedAddressStaysWithTheBrowser: standalone pages show
// the address typed in full (SECURITY.md H37 holds: it is what that
// browser sent, never what the store has). A real Caddy writes its access
// log and every log line at debug level to files: the address reaches
// the page of the browser that typed it, with no-store, and the "Change"
// form filled in, but no other browser, no URL and no log line.
func TestStandaloneTypedAddressStaysWithTheBrowser(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	logs := t.TempDir()
	const typed = "carol.typo@example.com"
	startCaddy(t, strings.Replace(standaloneSite(t, `log {
		output file `+filepath.Join(logs, "caddy.log")+`
		level DEBUG
	}`, smtpBlock(srv, "starttls"), relaxedThrottle, up), "\tmfa {", `	log {
		output file `+filepath.Join(logs, "access.log")+`
	}
	mfa {`, 1))

	c := newClient(t)
	page := c.get("/.mfa/", "text/html")
	r := c.postForm("/.mfa/identify", url.Values{"username": {typed}, "csrf_token": {form(t, page.body, "/.mfa/identify").values.Get("csrf_token")}})
	if r.StatusCode != http.StatusSeeOther || strings.Contains(r.Header.Get("Location"), "carol") {
		t.Fatalf("identify: status %d, Location %q", r.StatusCode, r.Header.Get("Location"))
	}
	page = c.get("/.mfa/", "text/html")
	if !strings.Contains(string(page.body), "<strong>"+typed+"</strong> · ") || page.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("the verify page (Cache-Control %q) does not show the address typed:\n%s", page.Header.Get("Cache-Control"), string(page.body))
	}
	if r := c.get("/.mfa/", "application/json"); r.json(t)["destination"] != typed || r.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("JSON verify step: %s (Cache-Control %q)", r.body, r.Header.Get("Cache-Control"))
	}
	change := c.get("/.mfa/?method=identify", "text/html")
	if f := form(t, change.body, "/.mfa/identify"); !strings.Contains(string(change.body), `value="`+typed+`"`) || f.values.Get("csrf_token") == "" {
		t.Fatalf("Change: not the identify form filled in:\n%s", string(change.body))
	}

	other := newClient(t)
	for _, accept := range []string{"text/html", "application/json"} {
		if r := other.get("/.mfa/", accept); strings.Contains(string(r.body), "carol") {
			t.Errorf("another browser sees the address (%s):\n%s", accept, string(r.body))
		}
	}

	var access, all string
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, _ := os.ReadFile(filepath.Join(logs, "access.log"))
		b, _ := os.ReadFile(filepath.Join(logs, "caddy.log"))
		access, all = string(a), string(b)
		if strings.Count(access, "\n") >= 7 && strings.Contains(all, "delivery attempt") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(access, `"uri":"/.mfa/?method=identify"`) || !strings.Contains(all, `c***@e***.com`) {
		t.Fatalf("the logs miss the sign-in:\naccess:\n%s\nlog:\n%s", access, all)
	}
	for name, text := range map[string]string{"access log": access, "log": all} {
		if strings.Contains(text, "carol.typo") {
			t.Errorf("the %s carries the address typed:\n%s", name, text)
		}
	}
}
