package caddymfa

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/internal/mailtest"
)

const testBaseURL = "https://mfa.example.com"

// linkEnv is the test handler with email in link mode and base_url set.
func linkEnv(t *testing.T, modify ...func(*Handler)) *env {
	t.Helper()
	h, outbox := testConfig(t)
	h.BaseURL = testBaseURL
	h.Email.Send = email.SendLink
	for _, m := range modify {
		m(h)
	}
	return newEnv(t, h, outbox)
}

var linkPattern = regexp.MustCompile(`https?://[^\s"<>]+/link#([A-Za-z0-9_-]+)`)

// lastLink returns the link of the newest message in the outbox and its
// token, checking that the HTML part carries the same link.
func (e *env) lastLink() (link, token string) {
	e.t.Helper()
	names := e.outboxFiles()
	if len(names) == 0 {
		e.t.Fatal("no message in the outbox")
	}
	raw, err := os.ReadFile(names[len(names)-1])
	if err != nil {
		e.t.Fatal(err)
	}
	m, err := mailtest.Parse(raw)
	if err != nil {
		e.t.Fatal(err)
	}
	match := linkPattern.FindStringSubmatch(m.Text)
	if match == nil {
		e.t.Fatalf("no link in message text %q", m.Text)
	}
	if !strings.Contains(m.HTML, `href="`+match[0]+`"`) {
		e.t.Fatalf("the HTML part does not link to %s:\n%s", match[0], m.HTML)
	}
	return match[0], match[1]
}

// openLink opens the link page as the script of the landing page does:
// GET /link, then POST the token from the fragment. It returns the
// confirm page's CSRF token.
func (b *browser) openLink(token string) string {
	b.e.t.Helper()
	b.openLinkPage(token)
	return b.openLinkPage(token)["csrf_token"].(string)
}

// openLinkPage GETs the landing page and posts the token (JSON), and
// returns the answer to the post.
func (b *browser) openLinkPage(token string) map[string]any {
	b.e.t.Helper()
	resp := b.do(request{target: "/.mfa/link", header: http.Header{"Accept": {"application/json"}}})
	if v := decodeJSON(b.e.t, resp); resp.StatusCode != http.StatusOK || v["step"] != stepLinkOpen {
		b.e.t.Fatalf("GET /link: %d %v", resp.StatusCode, v)
	}
	resp = b.do(request{method: http.MethodPost, target: "/.mfa/link", json: map[string]string{"token": token}})
	v := decodeJSON(b.e.t, resp)
	if resp.StatusCode != http.StatusOK || v["step"] != stepLinkConfirm {
		b.e.t.Fatalf("POST /link (open): %d %v", resp.StatusCode, v)
	}
	return v
}

// confirmLink opens the link page and posts its form, as JSON. When the
// page offers numbers (another browser), it picks the one the waiting
// page of the sign-in shows (SECURITY.md L57).
func (b *browser) confirmLink(token string) (*http.Response, map[string]any) {
	b.e.t.Helper()
	page := b.openLinkPage(token)
	fields := map[string]string{"token": token, "csrf_token": page["csrf_token"].(string)}
	if page["numbers"] != nil {
		cid, _ := linkChallenge(token)
		fields["number"] = strconv.Itoa(matchOf(b.e.t, b.e.h.challenges, cid))
	}
	resp := b.do(request{method: http.MethodPost, target: "/.mfa/link", json: fields})
	return resp, decodeJSON(b.e.t, resp)
}

// status GETs /status.
func (b *browser) status() (*http.Response, map[string]any) {
	b.e.t.Helper()
	resp := b.do(request{target: "/.mfa/status"})
	return resp, decodeJSON(b.e.t, resp)
}

// signedIn reports whether the browser's next request reaches the
// upstream.
func (b *browser) signedIn() bool {
	b.e.t.Helper()
	resp := b.do(request{target: "/app", header: http.Header{"Accept": {"application/json"}}})
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// sendLink starts alice's sign-in in link mode and returns her browser
// and the token that arrived.
func (e *env) sendLink(user string) (*browser, string) {
	e.t.Helper()
	b := e.browser(user)
	b.do(request{target: "/.mfa/?return=%2Fdocs%2Fa"}).Body.Close()
	resp := b.postJSON("/send", map[string]string{"method": "email"})
	v := decodeJSON(e.t, resp)
	if resp.StatusCode != http.StatusOK || v["step"] != stepLinkSent || v["method"] != "email" || v["code"] != nil {
		e.t.Fatalf("send: %d %v", resp.StatusCode, v)
	}
	_, token := e.lastLink()
	return b, token
}

func TestLinkSameBrowser(t *testing.T) {
	e := linkEnv(t)
	b := e.browser("alice")
	st := b.state()
	if st["step"] != stepChoose || !slices.Equal(strs(st["link_methods"]), []string{"email"}) {
		t.Fatalf("choose step: %v", st)
	}
	b.do(request{target: "/.mfa/?return=%2Fdocs%2Fa"}).Body.Close()
	resp := b.postJSON("/send", map[string]string{"method": "email"})
	v := decodeJSON(t, resp)
	if resp.StatusCode != 200 || v["step"] != stepLinkSent || v["destination"] != "a***@e***.com" || v["expires_in"] != 600.0 || v["attempts_left"] != nil {
		t.Fatalf("send: %d %v", resp.StatusCode, v)
	}
	link, token := e.lastLink()
	if want := testBaseURL + "/.mfa/link#" + token; link != want {
		t.Errorf("link %s, want %s", link, want)
	}
	if len(token) != 70 {
		t.Errorf("token %q is %d characters, want 70", token, len(token))
	}
	if ch := e.challengeOf(b); ch.CodeMAC != nil || ch.LinkMAC == nil || strings.Contains(fmt.Sprint(ch), token) {
		t.Errorf("challenge record %+v", ch)
	}

	resp, v = b.confirmLink(token)
	if resp.StatusCode != 200 || v["step"] != stepDone || v["redirect"] != "/docs/a" || v["method"] != "email" {
		t.Fatalf("confirm: %d %v", resp.StatusCode, v)
	}
	if !b.signedIn() {
		t.Fatal("no session after confirming in the same browser")
	}
	if e.replVals[len(e.replVals)-1]["mfa.method"] != "email" {
		t.Errorf("method placeholder %v", e.replVals[len(e.replVals)-1])
	}
	// Right after, the same token again answers as its success did and
	// changes nothing (SECURITY.md K53): no second session.
	sessions := len(e.storeKeys(keySession))
	for _, other := range []*browser{b, e.browser(""), e.browser("alice")} {
		if resp, v := other.confirmLink(token); resp.StatusCode != http.StatusOK || v["error"] != nil {
			t.Errorf("repeat: %d %v", resp.StatusCode, v)
		}
	}
	if n := len(e.storeKeys(keySession)); n != sessions {
		t.Errorf("repeats made %d sessions", n-sessions)
	}
	// Single use: after the short window, the same token again, from
	// anywhere, fails.
	e.clock.add(repeatWindow)
	for _, other := range []*browser{b, e.browser(""), e.browser("alice")} {
		if resp, v := other.confirmLink(token); resp.StatusCode != http.StatusUnauthorized || v["error"] != errCodeInvalidLink {
			t.Errorf("second use: %d %v", resp.StatusCode, v)
		}
	}
}

// TestLinkSameBrowserForm confirms through the HTML pages, without
// scripts: the landing page asks for the link, the user pastes it whole,
// the confirm page carries the token only in its form, and the POST
// answers 303.
func TestLinkSameBrowserForm(t *testing.T) {
	e := linkEnv(t)
	b, token := e.sendLink("alice")
	link, _ := e.lastLink()
	resp := b.do(request{target: "/.mfa/link", header: http.Header{"Accept": {"text/html"}}})
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if page := string(body); resp.StatusCode != 200 || !strings.Contains(page, `<input id="token" name="token" type="text"`) ||
		!strings.Contains(page, `<script src="/.mfa/link.js"></script>`) {
		t.Fatalf("landing page: %d\n%s", resp.StatusCode, page)
	}
	resp = b.do(request{target: "/.mfa/link", form: url.Values{"token": {" " + link + " "}}, header: http.Header{"Accept": {"text/html"}}})
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	page := string(body)
	if resp.StatusCode != 200 || resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("link page: %d %v", resp.StatusCode, resp.Header)
	}
	if strings.Count(page, token) != 1 || !strings.Contains(page, `name="token" value="`+token+`"`) {
		t.Errorf("the token is not exactly once, in the form:\n%s", page)
	}
	for _, bad := range []string{"<script", "http://", "https://", "<img", "<iframe"} {
		if strings.Contains(page, bad) {
			t.Errorf("link page has %q:\n%s", bad, page)
		}
	}
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if csrf == nil {
		t.Fatalf("no CSRF token on the link page:\n%s", page)
	}
	resp = b.do(request{target: "/.mfa/link", form: url.Values{"token": {token}, "csrf_token": {csrf[1]}}, header: http.Header{"Accept": {"text/html"}}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/docs/a" {
		t.Fatalf("confirm: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !b.signedIn() {
		t.Fatal("no session")
	}
}

// TestLinkCrossDevice: the link is confirmed on a phone that has no flow
// cookie and no first factor; the browser that asked signs in by itself,
// on its next GET / (the waiting page refreshes) or GET /status, once.
func TestLinkCrossDevice(t *testing.T) {
	for _, tt := range []struct {
		name string
		pick func(b *browser) (int, string) // the first browser's next request: status, where it goes
	}{
		{"GET / refresh", func(b *browser) (int, string) {
			resp := b.do(request{target: "/.mfa/", header: http.Header{"Accept": {"text/html"}}})
			resp.Body.Close()
			return resp.StatusCode, resp.Header.Get("Location")
		}},
		{"GET / JSON", func(b *browser) (int, string) {
			resp := b.do(request{target: "/.mfa/", header: http.Header{"Accept": {"application/json"}}})
			v := decodeJSON(b.e.t, resp)
			if v["step"] != stepDone {
				b.e.t.Errorf("step %v", v)
			}
			s, _ := v["redirect"].(string)
			return resp.StatusCode, s
		}},
		{"GET /status", func(b *browser) (int, string) {
			resp, v := b.status()
			if v["status"] != statusVerified {
				b.e.t.Errorf("status %v", v)
			}
			s, _ := v["redirect"].(string)
			return resp.StatusCode, s
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := linkEnv(t)
			b, token := e.sendLink("alice")
			flowID := e.flowID(b)
			// The waiting page's own script asks /status; without
			// scripts the page refreshes itself.
			resp := b.do(request{target: "/.mfa/", header: http.Header{"Accept": {"text/html"}}})
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(page), `<noscript><meta http-equiv="refresh" content="3"></noscript>`) || !strings.Contains(string(page), `<script src="/.mfa/link.js" data-status="/.mfa/status" defer></script>`) {
				t.Errorf("waiting page:\n%s", page)
			}
			if _, v := b.status(); v["status"] != statusPending || v["expires_in"] != 600.0 {
				t.Errorf("status before the confirmation: %v", v)
			}

			clone := e.browser("alice")
			u := &url.URL{Scheme: "http", Host: "app.test"}
			clone.jar.SetCookies(u, b.jar.Cookies(u))

			phone := e.browser("")
			resp, v := phone.confirmLink(token)
			if resp.StatusCode != 200 || v["step"] != stepLinkConfirmed {
				t.Fatalf("confirm on the phone: %d %v", resp.StatusCode, v)
			}
			if phone.signedIn() {
				t.Error("the phone got a session")
			}
			if ch := e.challenge(flowID); ch.State != stateVerified {
				t.Errorf("challenge state %s, want verified", ch.State)
			}

			status, dest := tt.pick(b)
			if status != http.StatusOK && status != http.StatusSeeOther || dest != "/docs/a" {
				t.Fatalf("first browser: %d, going to %q", status, dest)
			}
			if !b.signedIn() {
				t.Fatal("the first browser has no session")
			}
			if ch := e.challenge(flowID); ch.State != stateUsed {
				t.Errorf("challenge state %s, want used", ch.State)
			}
			// Once: a copy of the flow cookie taken before gets nothing.
			if _, v := clone.status(); v["status"] != statusExpired || clone.signedIn() {
				t.Errorf("a copy of the flow cookie after the pick-up: %v", v)
			}
		})
	}
}

// TestLinkCrossDeviceSecondFactor: a phone that passes the first factor
// as another user, or as the same user without the flow, confirms but
// signs nothing in itself; the challenge goes to alice's browser only.
func TestLinkCrossDeviceSecondFactor(t *testing.T) {
	e := linkEnv(t)
	b, token := e.sendLink("alice")
	bob := e.browser("bob")
	bob.state() // a flow of his own
	if resp, v := bob.confirmLink(token); resp.StatusCode != 200 || v["step"] != stepLinkConfirmed {
		t.Fatalf("confirm as bob: %d %v", resp.StatusCode, v)
	}
	if bob.signedIn() {
		t.Fatal("bob got a session from alice's link")
	}
	// Bob's browser does not pick up alice's sign-in.
	if _, v := bob.status(); v["status"] != statusExpired {
		t.Errorf("bob's status %v", v)
	}
	if _, v := b.status(); v["status"] != statusVerified || !b.signedIn() {
		t.Errorf("alice's status %v", v)
	}
	if e.replVals[len(e.replVals)-1]["mfa.user"] != "alice" {
		t.Errorf("session user %v", e.replVals[len(e.replVals)-1])
	}
}

func TestLinkStatus(t *testing.T) {
	e := linkEnv(t)
	b := e.browser("alice")
	if resp, v := b.status(); resp.StatusCode != 200 || v["status"] != statusExpired {
		t.Fatalf("no flow: %d %v", resp.StatusCode, v)
	}
	if resp, v := e.browser("").status(); resp.StatusCode != http.StatusUnauthorized || v["error"] != errCodeNoUser {
		t.Errorf("no first factor: %d %v", resp.StatusCode, v)
	}
	b, _ = e.sendLink("alice")
	if _, v := b.status(); v["status"] != statusPending || v["expires_in"] != 600.0 {
		t.Errorf("after send: %v", v)
	}
	e.clock.add(4 * time.Minute)
	if _, v := b.status(); v["status"] != statusPending || v["expires_in"] != 360.0 {
		t.Errorf("4 minutes later: %v", v)
	}
	e.clock.add(6*time.Minute + time.Second)
	if _, v := b.status(); v["status"] != statusExpired {
		t.Errorf("after link_ttl: %v", v)
	}
	if st := b.state(); st["step"] != stepChoose || st["error"] != "expired" || !strings.Contains(st["message"].(string), "link") {
		t.Errorf("page after expiry: %v", st)
	}
	// A signed-in browser is verified.
	b2, token := e.sendLink("bob")
	b2.confirmLink(token)
	if _, v := b2.status(); v["status"] != statusVerified || v["redirect"] != "/" {
		t.Errorf("signed in: %v", v)
	}
	if resp := b2.do(request{method: http.MethodPost, target: "/.mfa/status", json: map[string]string{}}); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /status: %d", resp.StatusCode)
	}
}

// TestLinkRefused: the token is refused after expiry, on second use, when
// wrong, and GET alone (as mail scanners do) signs nobody in. Every
// refusal is the same answer.
func TestLinkRefused(t *testing.T) {
	t.Run("GET alone", func(t *testing.T) {
		e := linkEnv(t)
		b, token := e.sendLink("alice")
		scanner := e.browser("")
		for range 5 {
			scanner.openLink(token)
			b.openLink(token)
			resp := b.do(request{method: http.MethodHead, target: "/.mfa/link"})
			resp.Body.Close()
		}
		if b.signedIn() || scanner.signedIn() {
			t.Fatal("GET /link signed someone in")
		}
		if ch := e.challengeOf(b); ch.State != statePending || ch.Attempts != 0 {
			t.Errorf("GET changed the challenge: %+v", ch)
		}
		if _, v := b.status(); v["status"] != statusPending {
			t.Errorf("status %v", v)
		}
		// The link still works afterwards.
		if resp, _ := b.confirmLink(token); resp.StatusCode != 200 || !b.signedIn() {
			t.Errorf("confirm after the GETs: %d", resp.StatusCode)
		}
	})
	t.Run("expired", func(t *testing.T) {
		e := linkEnv(t, func(h *Handler) { h.Email.LinkTTL = caddy.Duration(2 * time.Minute) })
		b, token := e.sendLink("alice")
		e.clock.add(2*time.Minute + time.Second)
		resp, v := e.browser("").confirmLink(token)
		if resp.StatusCode != http.StatusUnauthorized || v["error"] != errCodeInvalidLink {
			t.Fatalf("expired link: %d %v", resp.StatusCode, v)
		}
		if b.signedIn() {
			t.Fatal("an expired link signed in")
		}
		if _, v := b.status(); v["status"] != statusExpired {
			t.Errorf("status %v", v)
		}
	})
	t.Run("at link_ttl - 1s", func(t *testing.T) {
		e := linkEnv(t, func(h *Handler) { h.Email.LinkTTL = caddy.Duration(2 * time.Minute) })
		b, token := e.sendLink("alice")
		e.clock.add(2*time.Minute - time.Second)
		if resp, _ := b.confirmLink(token); resp.StatusCode != 200 || !b.signedIn() {
			t.Fatalf("link at link_ttl - 1s: %d", resp.StatusCode)
		}
	})
	t.Run("picked up too late", func(t *testing.T) {
		e := linkEnv(t)
		b, token := e.sendLink("alice")
		e.browser("").confirmLink(token)
		e.clock.add(linkPickup + time.Second)
		if _, v := b.status(); v["status"] != statusExpired || b.signedIn() {
			t.Errorf("status %v", v)
		}
	})
	t.Run("resend kills the old link", func(t *testing.T) {
		e := linkEnv(t)
		b, old := e.sendLink("alice")
		if resp := b.postJSON("/resend", map[string]string{"method": "email"}); resp.StatusCode != 200 {
			t.Fatalf("resend: %d", resp.StatusCode)
		}
		_, fresh := e.lastLink()
		if fresh == old {
			t.Fatal("resend sent the same token")
		}
		if resp, _ := e.browser("").confirmLink(old); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("old link after resend: %d", resp.StatusCode)
		}
		if resp, _ := b.confirmLink(fresh); resp.StatusCode != 200 {
			t.Errorf("new link: %d", resp.StatusCode)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		e := linkEnv(t)
		phone := e.browser("")
		for _, token := range []string{"", "abc", strings.Repeat("A", 70) + "=", strings.Repeat("*", 70)} {
			resp := phone.do(request{method: http.MethodPost, target: "/.mfa/link", json: map[string]string{"token": token}})
			if v := decodeJSON(t, resp); resp.StatusCode != http.StatusBadRequest || v["error"] != errCodeInvalidLink || v["csrf_token"] != nil {
				t.Errorf("POST /link token=%q: %d %v", token, resp.StatusCode, v)
			}
		}
		// A well-formed token naming no challenge gets the same answer
		// as a wrong one.
		b, token := e.sendLink("alice")
		unknown := strings.Repeat("A", 70)
		_, v1 := phone.confirmLink(unknown)
		_, v2 := phone.confirmLink(flipLast(token))
		if v1["error"] != errCodeInvalidLink || fmt.Sprint(v1) != fmt.Sprint(v2) {
			t.Errorf("unknown %v, wrong %v", v1, v2)
		}
		if b.signedIn() {
			t.Error("signed in")
		}
	})
}

// flipLast changes the last character of a token, keeping it well-formed.
func flipLast(token string) string {
	last := token[len(token)-1]
	repl := byte('A')
	if last == 'A' {
		repl = 'Q'
	}
	return token[:len(token)-1] + string(repl)
}

// TestLinkWrongTokensCount: wrong tokens for a challenge count in its
// attempts and in the user's lockout like wrong codes (SECURITY.md A1,
// A4, J46); once locked, even the right link fails, and a link's failures
// and a code's add up.
func TestLinkWrongTokensCount(t *testing.T) {
	t.Run("attempts", func(t *testing.T) {
		e := linkEnv(t)
		b, token := e.sendLink("alice")
		phone := e.browser("")
		for i := range 3 {
			if resp, v := phone.confirmLink(flipLast(token)); resp.StatusCode != http.StatusUnauthorized || v["error"] != errCodeInvalidLink {
				t.Fatalf("wrong token %d: %d %v", i, resp.StatusCode, v)
			}
		}
		if ch := e.challengeOf(b); ch.Attempts != 3 || ch.State != stateDead {
			t.Errorf("challenge after 3 wrong tokens: %+v", ch)
		}
		if resp, _ := phone.confirmLink(token); resp.StatusCode != http.StatusUnauthorized || b.signedIn() {
			t.Errorf("right token after max_attempts: %d", resp.StatusCode)
		}
		if st := b.state(); st["step"] != stepChoose || st["error"] != errCodeInvalid {
			t.Errorf("page: %v", st)
		}
	})
	t.Run("lockout", func(t *testing.T) {
		e := linkEnv(t, func(h *Handler) {
			h.Lockout = &Lockout{Failures: 3, Window: caddy.Duration(15 * time.Minute)}
			h.Email.MaxAttempts = 10
		})
		b, token := e.sendLink("alice")
		// Two wrong links and two wrong codes lock alice.
		e.browser("").confirmLink(flipLast(token))
		e.browser("").confirmLink(flipLast(token))
		b.postJSON("/verify", map[string]string{"method": "email", "code": "000000"})
		b.postJSON("/verify", map[string]string{"method": "email", "code": "000000"})
		if locked, _ := e.h.lockout.locked(t.Context(), "alice", ""); !locked {
			t.Fatal("alice is not locked")
		}
		resp, v := e.browser("").confirmLink(token)
		if resp.StatusCode != http.StatusUnauthorized || v["error"] != errCodeInvalidLink {
			t.Errorf("right link while locked: %d %v", resp.StatusCode, v)
		}
		if b.signedIn() {
			t.Error("signed in while locked")
		}
	})
	t.Run("locked before the pick-up", func(t *testing.T) {
		e := linkEnv(t, func(h *Handler) { h.Lockout = &Lockout{Failures: 1, Window: caddy.Duration(15 * time.Minute)} })
		b, token := e.sendLink("alice")
		e.browser("").confirmLink(token)
		other := e.browser("alice")
		other.postJSON("/send", map[string]string{"method": "email"})
		e.browser("").confirmLink(flipLast(token))
		other.postJSON("/verify", map[string]string{"method": "email", "code": "000000"})
		other.postJSON("/verify", map[string]string{"method": "email", "code": "000000"})
		if locked, _ := e.h.lockout.locked(t.Context(), "alice", ""); !locked {
			t.Fatal("alice is not locked")
		}
		if _, v := b.status(); v["status"] != statusExpired || b.signedIn() {
			t.Errorf("a locked user picked up a confirmed link: %v", v)
		}
	})
}

// TestLinkCSRF: POST /link confirms only with the CSRF token of its own
// link page, and the browser's same-origin signals; a post without a CSRF
// token only opens the confirm page; refused posts leave the token usable.
func TestLinkCSRF(t *testing.T) {
	e := linkEnv(t)
	b, token := e.sendLink("alice")
	phone := e.browser("")
	csrf := phone.openLink(token)
	otherCSRF := phone.openLink(flipLast(token))
	flowCSRF := b.state()["csrf_token"].(string)
	for name, rq := range map[string]request{
		"token of other link": {json: map[string]string{"token": token, "csrf_token": otherCSRF}},
		"token of the flow":   {json: map[string]string{"token": token, "csrf_token": flowCSRF}},
		"cross-site":          {json: map[string]string{"token": token, "csrf_token": csrf}, header: http.Header{"Sec-Fetch-Site": {"cross-site"}}},
		"foreign origin":      {json: map[string]string{"token": token, "csrf_token": csrf}, header: http.Header{"Origin": {"https://evil.example"}}},
	} {
		rq.method, rq.target = http.MethodPost, "/.mfa/link"
		resp := phone.do(rq)
		if v := decodeJSON(t, resp); resp.StatusCode != http.StatusForbidden || v["error"] != errCodeCSRF {
			t.Errorf("%s: %d %v", name, resp.StatusCode, v)
		}
	}
	if v := phone.openLinkPage(token); v["csrf_token"] != csrf {
		t.Errorf("opening without a CSRF token: %v", v)
	}
	if ch := e.challengeOf(b); ch.State != statePending || ch.Attempts != 0 {
		t.Errorf("refused posts changed the challenge: %+v", ch)
	}
	cid, _ := linkChallenge(token)
	resp := phone.do(request{method: http.MethodPost, target: "/.mfa/link", json: map[string]string{"token": token, "csrf_token": csrf, "number": strconv.Itoa(matchOf(t, e.h.challenges, cid))},
		header: http.Header{"Origin": {testBaseURL}, "Sec-Fetch-Site": {"same-origin"}}})
	if v := decodeJSON(t, resp); resp.StatusCode != 200 || v["step"] != stepLinkConfirmed {
		t.Fatalf("confirm: %d %v", resp.StatusCode, v)
	}
	if resp := phone.do(request{method: http.MethodPut, target: "/.mfa/link"}); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT /link: %d", resp.StatusCode)
	}
}

// TestLinkUsesBaseURL: the link is built from base_url and path_prefix,
// whatever Host and X-Forwarded-* the request that asked for it carries.
func TestLinkUsesBaseURL(t *testing.T) {
	e := linkEnv(t, func(h *Handler) {
		h.BaseURL = "https://mfa.example.com/"
		h.PathPrefix = "/auth/mfa"
	})
	b := e.browser("alice")
	hdr := http.Header{"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"http"}, "Forwarded": {"host=evil.example"}, "Accept": {"application/json"}}
	st := decodeJSON(t, b.do(request{target: "/auth/mfa/", host: "evil.example", header: hdr, trusted: true}))
	resp := b.do(request{method: http.MethodPost, target: "/auth/mfa/send", host: "evil.example", trusted: true, header: hdr,
		json: map[string]string{"method": "email", "csrf_token": st["csrf_token"].(string)}})
	if resp.StatusCode != 200 {
		t.Fatalf("send: %d %v", resp.StatusCode, decodeJSON(t, resp))
	}
	link, token := e.lastLink()
	if want := "https://mfa.example.com/auth/mfa/link#" + token; link != want {
		t.Errorf("link %s, want %s", link, want)
	}
	for _, m := range e.outboxMessages() {
		if strings.Contains(m, "evil.example") {
			t.Errorf("the message names the spoofed host:\n%s", m)
		}
	}
}

func TestLinkNeedsBaseURL(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(h *Handler)
		want   string
	}{
		{"email", func(h *Handler) { h.Email.Send = email.SendLink }, "email: send link needs base_url"},
		{"sms", func(h *Handler) {
			h.SMS = &sms.Config{ProviderRaw: json.RawMessage(`{"provider":"outbox","dir":` + quote(t.TempDir()) + `}`), Send: sms.SendLink}
		}, "sms: send link needs base_url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := testConfig(t)
			tt.change(h)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			_ = h.Cleanup()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Provision() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestLinkStandalone: in standalone mode every name gets the same waiting
// page, and a real user's link signs in the browser that asked.
func TestLinkStandalone(t *testing.T) {
	e := linkEnv(t, func(h *Handler) { h.User = new(string); h.LinkCrossDevice = true })
	answers := map[string]string{}
	for _, name := range []string{"alice", "nobody"} {
		b := e.browser("")
		st := b.state()
		resp := b.do(request{method: http.MethodPost, target: "/.mfa/identify", json: map[string]string{"username": name, "csrf_token": st["csrf_token"].(string)}})
		v := decodeJSON(t, resp)
		delete(v, "csrf_token")
		// A number to match for every name, known or not (random).
		if n, _ := v["match_number"].(float64); n < 10 || n > 99 {
			t.Errorf("identify %s: match_number %v", name, v["match_number"])
		}
		delete(v, "match_number")
		answers[name] = fmt.Sprint(resp.StatusCode, v)
		if v["step"] != stepLinkSent {
			t.Fatalf("identify %s: %v", name, v)
		}
		if name == "alice" {
			e.h.pending.Wait()
			waitFor(t, func() bool { return len(e.outboxFiles()) == 1 })
			_, token := e.lastLink()
			e.browser("").confirmLink(token)
			if _, v := b.status(); v["status"] != statusVerified || !b.signedIn() {
				t.Errorf("alice: %v", v)
			}
		}
	}
	if answers["alice"] != strings.Replace(answers["nobody"], "nobody", "alice", 1) {
		t.Errorf("answers differ: %v", answers)
	}
}

// TestLinkSMS signs in with a link by text message through the local
// Twilio server: confirmed on the phone, picked up by the browser.
func TestLinkSMS(t *testing.T) {
	e, tw := smsEnv(t, func(h *Handler) {
		h.BaseURL = testBaseURL
		h.SMS.Send = sms.SendLink
		h.SMS.LinkMessages = map[string]string{"sv": "Logga in: %s"}
	})
	b := e.browser("alice")
	if st := b.state(); !slices.Equal(strs(st["link_methods"]), []string{"sms"}) {
		t.Fatalf("link_methods %v", st["link_methods"])
	}
	csrf := b.state()["csrf_token"].(string)
	resp := b.do(request{method: http.MethodPost, target: "/.mfa/send", json: map[string]string{"method": "sms", "csrf_token": csrf}, header: http.Header{"Accept-Language": {"sv"}}})
	v := decodeJSON(t, resp)
	if resp.StatusCode != 200 || v["step"] != stepLinkSent || v["method"] != "sms" || v["expires_in"] != 300.0 {
		t.Fatalf("send: %d %v", resp.StatusCode, v)
	}
	msgs := tw.Messages()
	if len(msgs) != 1 || msgs[0].To != "+12015550123" {
		t.Fatalf("texts %+v", msgs)
	}
	m := regexp.MustCompile(`^Logga in: (` + regexp.QuoteMeta(testBaseURL) + `/\.mfa/link#([A-Za-z0-9_-]{70}))$`).FindStringSubmatch(msgs[0].Body)
	if m == nil {
		t.Fatalf("text %q", msgs[0].Body)
	}
	phone := e.browser("")
	if resp, v := phone.confirmLink(m[2]); resp.StatusCode != 200 || v["step"] != stepLinkConfirmed {
		t.Fatalf("confirm: %d %v", resp.StatusCode, v)
	}
	if resp, v := phone.confirmLink(m[2]); resp.StatusCode != 200 || v["step"] != stepLinkConfirmed {
		t.Errorf("a double click on the phone: %d %v", resp.StatusCode, v)
	}
	if _, v := b.status(); v["status"] != statusVerified || v["redirect"] != "/" {
		t.Fatalf("status %v", v)
	}
	if !b.signedIn() || e.replVals[len(e.replVals)-1]["mfa.method"] != "sms" {
		t.Error("no SMS session")
	}
}

// TestLinkTokensAreNeverStoredOrLogged (SECURITY.md B14): the store and
// the logs hold no token.
func TestLinkTokensAreNeverStoredOrLogged(t *testing.T) {
	e := linkEnv(t)
	core, logs := observer.New(zap.DebugLevel)
	e.h.logger = zap.New(core)
	e.h.wire()
	var tokens []string
	for _, user := range []string{"alice", "bob"} {
		b, token := e.sendLink(user)
		tokens = append(tokens, token)
		e.browser("").confirmLink(flipLast(token))
		e.browser("").confirmLink(token)
		b.status()
	}
	recs, err := e.h.store.List(t.Context(), "", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		for _, tok := range tokens {
			if strings.Contains(rec.Key, tok) || strings.Contains(string(rec.Value), tok) {
				t.Errorf("store record %s holds a token", rec.Key)
			}
		}
	}
	for _, entry := range logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		for _, tok := range tokens {
			if strings.Contains(line, tok) || strings.Contains(line, tok[len(tok)-43:]) {
				t.Errorf("log line holds a token: %s", line)
			}
		}
	}
}

// TestLinkConfirmedOnce (SECURITY.md A3, K53): the same link confirmed
// many times at once confirms the sign-in once (the others answer as a
// repeat of that success, or fail when they raced it), and a confirmed
// sign-in picked up by many requests at once makes one session. (A replay
// that raced the success counts in the lockout, as a replayed code does;
// the lockout is raised here so that those do not lock alice out before
// her browser picks the sign-in up.)
func TestLinkConfirmedOnce(t *testing.T) {
	e := linkEnv(t, func(h *Handler) { h.Lockout = &Lockout{Failures: 100} })
	b, token := e.sendLink("alice")
	phone := e.browser("")
	csrf := phone.openLink(token)
	cid, _ := linkChallenge(token)
	number := strconv.Itoa(matchOf(t, e.h.challenges, cid))
	const n = 20
	results := make(chan int, n)
	for range n {
		go func() {
			resp := phone.do(request{method: http.MethodPost, target: "/.mfa/link", json: map[string]string{"token": token, "csrf_token": csrf, "number": number}})
			resp.Body.Close()
			results <- resp.StatusCode
		}()
	}
	ok := 0
	for range n {
		if <-results == http.StatusOK {
			ok++
		}
	}
	if ok < 1 {
		t.Fatalf("%d confirmations succeeded, want at least the first", ok)
	}
	if ch := e.challengeOf(b); ch.State != stateVerified {
		t.Fatalf("challenge %s after the confirmations, want verified", ch.State)
	}
	sessions := make(chan bool, n)
	for range n {
		go func() {
			resp := b.do(request{target: "/.mfa/status"})
			defer resp.Body.Close()
			var v statusAnswer
			sessions <- json.NewDecoder(resp.Body).Decode(&v) == nil && v.Redirect == "/docs/a"
		}()
	}
	picked := 0
	for range n {
		if <-sessions {
			picked++
		}
	}
	if picked != 1 {
		t.Errorf("%d requests picked up the sign-in, want 1", picked)
	}
	recs, err := e.h.sessions.ofUser(t.Context(), "alice")
	if err != nil || len(recs) != 1 {
		t.Errorf("alice has %d sessions (%v), want 1", len(recs), err)
	}
}

// TestLinkPageSkipsAccessLog: GET /link, whose URL carried the token in
// links of earlier releases, asks Caddy to leave it out of the access log.
func TestLinkPageSkipsAccessLog(t *testing.T) {
	e := linkEnv(t)
	for _, target := range []string{"/.mfa/link?token=" + strings.Repeat("A", 70), "/.mfa/"} {
		r := httptest.NewRequest(http.MethodGet, "http://app.test"+target, nil)
		repl := caddyhttp.NewTestReplacer(r)
		repl.Set("http.auth.user.id", "alice")
		vars := map[string]any{caddyhttp.ClientIPVarKey: "192.0.2.10"}
		ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
		ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, vars)
		w := httptest.NewRecorder()
		if err := e.h.ServeHTTP(w, r.WithContext(ctx), nil); err != nil {
			t.Fatal(err)
		}
		skip, _ := vars[caddyhttp.LogSkipVar].(bool)
		if want := strings.Contains(target, "/link"); skip != want {
			t.Errorf("GET %s: log_skip %v, want %v", target, skip, want)
		}
	}
}

// storeKeys lists the store's keys under prefix.
func (e *env) storeKeys(prefix string) []string {
	e.t.Helper()
	recs, err := e.h.store.List(e.t.Context(), prefix, 0, false)
	if err != nil {
		e.t.Fatal(err)
	}
	keys := make([]string, len(recs))
	for i, r := range recs {
		keys[i] = r.Key
	}
	return keys
}

// TestLinkNumberMatching (SECURITY.md L57): a link opened in another
// browser shows where and when the sign-in began and three numbers, one
// of them the waiting page's; a wrong pick kills the link and counts as a
// failure. The browser that asked sees no numbers. In standalone mode
// another browser is refused unless link_cross_device is on.
func TestLinkNumberMatching(t *testing.T) {
	t.Run("wrong pick", func(t *testing.T) {
		e := linkEnv(t)
		b, token := e.sendLink("alice")
		want := int(b.state()["match_number"].(float64))
		if want < 10 || want > 99 {
			t.Fatalf("match number %d", want)
		}
		phone := e.browser("")
		page := phone.openLinkPage(token)
		nums := page["numbers"].([]any)
		wrong := 0
		seen := map[int]bool{}
		for _, n := range nums {
			seen[int(n.(float64))] = true
			if int(n.(float64)) != want {
				wrong = int(n.(float64))
			}
		}
		if len(nums) != 3 || len(seen) != 3 || !seen[want] {
			t.Fatalf("numbers %v, want three with %d", nums, want)
		}
		if o, _ := page["origin"].(map[string]any); o == nil || o["time"] == nil {
			t.Fatalf("no origin on the confirm page: %v", page)
		}
		resp := phone.do(request{method: http.MethodPost, target: "/.mfa/link", json: map[string]string{
			"token": token, "csrf_token": page["csrf_token"].(string), "number": strconv.Itoa(wrong)}})
		if v := decodeJSON(t, resp); resp.StatusCode != http.StatusUnauthorized || v["error"] != errCodeInvalidLink {
			t.Fatalf("wrong number: %d %v", resp.StatusCode, v)
		}
		if ch := e.challengeOf(b); ch.State != stateDead {
			t.Errorf("a wrong pick left the link %s", ch.State)
		}
		if rep, _ := e.h.lockout.report(t.Context(), "alice"); rep.Failures != 1 {
			t.Errorf("a wrong pick counted %d failures, want 1", rep.Failures)
		}
		// The right number now changes nothing: the link is dead.
		if resp, _ := phone.confirmLink(token); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("the link worked after a wrong pick: %d", resp.StatusCode)
		}
		if _, v := b.status(); v["status"] == statusVerified {
			t.Error("the sign-in was confirmed")
		}
	})
	t.Run("same browser", func(t *testing.T) {
		e := linkEnv(t)
		b, token := e.sendLink("alice")
		if page := b.openLinkPage(token); page["numbers"] != nil || page["origin"] != nil {
			t.Fatalf("the browser that asked is asked for a number: %v", page)
		}
		if resp, v := b.confirmLink(token); resp.StatusCode != 200 || v["step"] != stepDone {
			t.Fatalf("confirm: %d %v", resp.StatusCode, v)
		}
	})
	t.Run("standalone without link_cross_device", func(t *testing.T) {
		e := linkEnv(t, func(h *Handler) { h.User = new(string) })
		b := e.browser("")
		st := b.state()
		b.do(request{method: http.MethodPost, target: "/.mfa/identify", json: map[string]string{"username": "alice", "csrf_token": st["csrf_token"].(string)}}).Body.Close()
		e.h.pending.Wait()
		waitFor(t, func() bool { return len(e.outboxFiles()) == 1 })
		_, token := e.lastLink()
		phone := e.browser("")
		resp := phone.do(request{method: http.MethodPost, target: "/.mfa/link", json: map[string]string{"token": token}})
		if v := decodeJSON(t, resp); resp.StatusCode != http.StatusForbidden || v["error"] != errCodeLinkElsewhere {
			t.Fatalf("another browser: %d %v", resp.StatusCode, v)
		}
		if resp, v := b.confirmLink(token); resp.StatusCode != 200 || v["step"] != stepDone {
			t.Fatalf("the browser that asked: %d %v", resp.StatusCode, v)
		}
	})
}
