package integration

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

var linkPattern = regexp.MustCompile(`https?://[^\s"<>]+/\.mfa/link#[A-Za-z0-9_-]+`)

// openLink opens a sign-in link as a browser without scripts does: GET
// the page (the token, in the fragment, stays with the client), then
// paste the link into the page's form. It returns the confirm page.
func openLink(t *testing.T, c *client, link string) *response {
	t.Helper()
	path, _, _ := strings.Cut(strings.TrimPrefix(link, siteURL), "#")
	r := c.get(path, "text/html")
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), `name="token"`) {
		t.Fatalf("GET %s: status %d:\n%s", path, r.StatusCode, r.body)
	}
	return c.postForm(path, url.Values{"token": {link}})
}

// TestLinkCrossDevice signs alice in with an emailed link through a real
// Caddy and a real SMTP server: the browser that asked waits on a page
// that refreshes itself, the link is confirmed on a phone that has
// neither the flow cookie nor the first factor (basic_auth leaves the
// link page out, as the README suggests), and the first browser then
// signs in by itself and goes where it first wanted to.
func TestLinkCrossDevice(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startLinkSite(t, srv, up)

	browser := newClient(t).withBasicAuth("alice", alicePassword)
	browser.header.Set("User-Agent", firefoxOnLinux)
	const target = "/reports/q3?x=1"
	r := browser.get(target, "text/html")
	if r.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: status %d", target, r.StatusCode)
	}
	r = browser.get(r.Header.Get("Location"), "text/html")
	if !strings.Contains(string(r.body), "Email me a sign-in link") {
		t.Fatalf("the choose page does not offer a link:\n%s", r.body)
	}
	f := form(t, r.body, "/.mfa/send")
	if r = browser.postForm(f.action, f.values); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("send: status %d: %s", r.StatusCode, r.body)
	}

	// The waiting page refreshes itself, and /status says pending.
	r = browser.get("/.mfa/", "text/html")
	if !strings.Contains(string(r.body), `<meta http-equiv="refresh" content="3">`) {
		t.Fatalf("the waiting page does not refresh itself:\n%s", r.body)
	}
	number := matchNumber(t, r.body)
	if st := browser.get("/.mfa/status", "application/json").json(t); st["status"] != "pending" || st["expires_in"] != 900.0 {
		t.Fatalf("status %v, want pending for 15 minutes", st)
	}

	m := waitMessage(t, srv, 1)
	if len(m.To) != 1 || m.To[0] != "alice@example.com" {
		t.Errorf("RCPT TO %q", m.To)
	}
	link := linkPattern.FindString(m.text)
	if link == "" || !strings.HasPrefix(link, siteURL+"/.mfa/link#") {
		t.Fatalf("no link from base_url in the text part:\n%s", m.text)
	}
	if !strings.Contains(m.html, `href="`+link+`"`) {
		t.Errorf("the HTML part does not link to %s:\n%s", link, m.html)
	}
	if codePattern.MatchString(strings.ReplaceAll(m.text, link, "")) {
		t.Errorf("the link message carries a code:\n%s", m.text)
	}
	// On the phone: opening the link (as a mail scanner would) changes
	// nothing; the confirm button does.
	phone := newClient(t)
	r = openLink(t, phone, link)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), "Confirm sign-in") {
		t.Fatalf("GET the link: status %d:\n%s", r.StatusCode, r.body)
	}
	if st := browser.get("/.mfa/status", "application/json").json(t); st["status"] != "pending" {
		t.Fatalf("status after GET /link: %v", st)
	}
	// SECURITY.md L57: another browser is shown where and when the
	// sign-in began and picks the waiting page's number out of three.
	if page := string(r.body); !strings.Contains(page, "Firefox, Linux") || strings.Count(page, `name="number"`) != 3 ||
		!strings.Contains(page, `name="number" value="`+number+`"`) {
		t.Fatalf("the confirm page does not offer the number %s with the sign-in's origin:\n%s", number, page)
	}
	confirm := form(t, r.body, "/.mfa/link")
	confirm.values.Set("number", number)
	r = phone.postForm(confirm.action, confirm.values)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), "Sign-in confirmed") {
		t.Fatalf("confirm: status %d:\n%s", r.StatusCode, r.body)
	}
	// A double click answers as the first did and changes nothing
	// (SECURITY.md K53).
	if r2 := phone.postForm(confirm.action, confirm.values); r2.StatusCode != http.StatusOK || !strings.Contains(string(r2.body), "Sign-in confirmed") {
		t.Errorf("a second click: status %d", r2.StatusCode)
	}
	if phone.get(target, "application/json").StatusCode != http.StatusUnauthorized {
		t.Error("the phone reached the site")
	}

	// The waiting page's next refresh signs the first browser in.
	r = browser.get("/.mfa/", "text/html")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != target {
		t.Fatalf("refresh after the confirmation: status %d, Location %q: %s", r.StatusCode, r.Header.Get("Location"), r.body)
	}
	r = browser.get(target, "text/html")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d: %s", target, r.StatusCode, r.body)
	}
	got := up.last(t)
	if got.Header.Get("X-Mfa-User") != "alice" || got.Header.Get("X-Mfa-Method") != "email" {
		t.Errorf("upstream saw user %q, method %q", got.Header.Get("X-Mfa-User"), got.Header.Get("X-Mfa-Method"))
	}
	if up.count() != 1 {
		t.Errorf("the upstream received %d requests, want 1", up.count())
	}
	if st := browser.get("/.mfa/status", "application/json").json(t); st["status"] != "verified" {
		t.Errorf("status after sign-in: %v", st)
	}
}

// firefoxOnLinux is a User-Agent the confirm page names.
const firefoxOnLinux = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"

var matchNumberPattern = regexp.MustCompile(`class="match-number">(\d\d)<`)

// matchNumber returns the number a waiting page shows.
func matchNumber(t *testing.T, page []byte) string {
	t.Helper()
	m := matchNumberPattern.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no number on the waiting page:\n%s", page)
	}
	return string(m[1])
}

// TestLinkWrongNumber: SECURITY.md L57. A link opened on another device
// and confirmed with a number other than the waiting page's is dead: the
// right number afterwards signs nobody in, the waiting browser is told
// the link is over, and the pick counted as a failure. (Standalone mode
// without link_cross_device: TestLinkNumberMatching in caddymfa.)
func TestLinkWrongNumber(t *testing.T) {
	srv := newSMTP(t)
	startLinkSite(t, srv, newUpstream(t))
	browser := newClient(t).withBasicAuth("alice", alicePassword)
	if r := browser.postJSON("/.mfa/send", map[string]string{"method": "email"}); r.StatusCode != http.StatusOK {
		t.Fatalf("send: status %d: %s", r.StatusCode, r.body)
	}
	number := matchNumber(t, browser.get("/.mfa/", "text/html").body)
	link := linkPattern.FindString(waitMessage(t, srv, 1).text)
	phone := newClient(t)
	r := openLink(t, phone, link)
	confirm := form(t, r.body, "/.mfa/link")
	wrong := ""
	for _, m := range regexp.MustCompile(`name="number" value="(\d\d)"`).FindAllSubmatch(r.body, -1) {
		if string(m[1]) != number {
			wrong = string(m[1])
		}
	}
	if wrong == "" {
		t.Fatalf("no other number to pick:\n%s", r.body)
	}
	confirm.values.Set("number", wrong)
	// A refused link form goes, through a 303, to the link page, which
	// says the link is not valid, once.
	refused := func(what string) {
		t.Helper()
		if r := phone.postForm(confirm.action, confirm.values); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.mfa/link" {
			t.Fatalf("%s: status %d %q", what, r.StatusCode, r.Header.Get("Location"))
		}
		if r := phone.get("/.mfa/link", "text/html"); r.StatusCode != http.StatusUnauthorized || !strings.Contains(string(r.body), "This link is not valid") {
			t.Fatalf("%s: the link page: %d\n%s", what, r.StatusCode, r.body)
		}
	}
	refused("a wrong number")
	confirm.values.Set("number", number)
	refused("the right number after a wrong one")
	if st := browser.get("/.mfa/status", "application/json").json(t); st["status"] != "expired" {
		t.Fatalf("status %v, want expired", st)
	}
	if _, ok := protected(t, browser, "/page"); ok {
		t.Fatal("signed in after a wrong number")
	}
	var failures float64
	admin := newClient(t)
	admin.base = "http://" + adminAddr
	if u := admin.get("/mfa/users/alice", "application/json").json(t); u["failures"] != nil {
		failures, _ = u["failures"].(float64)
	}
	if failures < 1 {
		t.Errorf("the wrong pick counted no failure")
	}
}

// startLinkSite starts alice's site in link mode (15 minutes) behind
// basic_auth, which leaves the link page out, as the README suggests.
func startLinkSite(t *testing.T, srv *smtptest.Server, up *upstream) {
	t.Helper()
	startCaddy(t, globalOptions("")+siteURL+` {
	@notlink not path /.mfa/link
	basic_auth @notlink {
		alice `+bcryptHash(t, alicePassword)+`
	}
	mfa {
		base_url `+siteURL+`
		storage badger `+t.TempDir()+`
		secret_key `+testSecret+`
		users {
			alice email alice@example.com
		}
		email {
			`+smtpBlock(srv, "starttls")+`
			from "Example <noreply@example.com>"
			send link
			link_ttl 15m
		}
	}
	reverse_proxy `+up.addr()+` {
		header_up X-Mfa-User {http.auth.mfa.user}
		header_up X-Mfa-Method {http.auth.mfa.method}
	}
}
`)
}
