package caddymfa

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

var (
	titlePattern  = regexp.MustCompile(`<title>([^<]*)</title>`)
	buttonPattern = regexp.MustCompile(`<a class="button" id="sign-in-again" href="([^"]*)">`)
)

// csrfOf returns the CSRF token of the page's first form.
func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	return m[1]
}

// Signing out with the form lands (303, so a reload posts nothing) on a
// page that says so and leads back to the page the sign-in was for; its
// address carries that path and nothing else. The session is gone
// (SECURITY.md E30) and the page starts no flow.
func TestLogoutLandsOnSignedOutPage(t *testing.T) {
	h, outbox := testConfig(t)
	h.SiteName = "Example Corp"
	e := newEnv(t, h, outbox)
	b := e.signIn("alice")

	done := readBody(t, b.do(request{target: "/.mfa/?return=%2Fdocs%3Fa%3D1", header: htmlAccept()}))
	if !strings.Contains(done, `<input type="hidden" name="return" value="/docs?a=1">`) {
		t.Fatalf("the signed-in page's sign-out form does not carry the return path:\n%s", done)
	}
	resp := b.do(request{target: "/.mfa/logout", form: url.Values{"csrf_token": {csrfOf(t, done)}, "return": {"/docs?a=1"}}, header: htmlAccept()})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: status %d, want 303", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if loc != "/.mfa/signed-out?return=%2Fdocs%3Fa%3D1" {
		t.Fatalf("logout goes to %q, want the signed-out page with the return path only", loc)
	}
	for range 2 { // the page, then a reload of it
		resp = b.do(request{target: loc, header: htmlAccept()})
		page := readBody(t, resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("signed-out page: status %d:\n%s", resp.StatusCode, page)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("Cache-Control %q, want no-store", got)
		}
		if len(resp.Cookies()) != 0 {
			t.Errorf("the signed-out page sets cookies %v", resp.Cookies())
		}
		if m := titlePattern.FindStringSubmatch(page); m == nil || html.UnescapeString(m[1]) != "Signed out · Example Corp" {
			t.Errorf("title %q, want the signed-out title with the site name", m)
		}
		if !strings.Contains(page, `<h1 id="title">You are signed out</h1>`) || !strings.Contains(page, "You signed out of Example Corp in this browser.") {
			t.Errorf("the page does not say the browser is signed out of the site:\n%s", page)
		}
		if m := buttonPattern.FindStringSubmatch(page); m == nil || html.UnescapeString(m[1]) != "/docs?a=1" {
			t.Errorf("Sign in again leads to %q, want the return path:\n%s", m, page)
		}
	}
	if resp := b.do(request{target: "/docs", header: htmlAccept()}); resp.StatusCode != http.StatusFound {
		t.Fatalf("protected page after signing out: status %d, want 302 to the sign-in", resp.StatusCode)
	}
}

// The page's "Sign in again" leads only to a safe return path, else to
// the site's root (SECURITY.md F32); JSON clients keep their answer.
func TestSignedOutPageReturn(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	for target, want := range map[string]string{
		"/.mfa/signed-out":                           "/",
		"/.mfa/signed-out?return=%2Fapp":             "/app",
		"/.mfa/signed-out?return=%2F%2Fevil.example": "/",
		"/.mfa/signed-out?return=https%3A%2F%2Fevil": "/",
		"/.mfa/signed-out?return=%2F.mfa%2F":         "/",
		"/.mfa/signed-out?return=javascript%3Aalert": "/",
	} {
		page := readBody(t, b.do(request{target: target, header: htmlAccept()}))
		if m := buttonPattern.FindStringSubmatch(page); m == nil || html.UnescapeString(m[1]) != want {
			t.Errorf("%s: Sign in again leads to %q, want %q", target, m, want)
		}
	}
	st := decodeJSON(t, b.do(request{target: "/.mfa/signed-out", header: jsonAccept}))
	if st["step"] != stepSignedOut || st["redirect"] != "/" {
		t.Errorf("JSON signed-out page: %v", st)
	}
	if resp := b.do(request{method: http.MethodPost, target: "/.mfa/signed-out", header: htmlAccept()}); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST on the signed-out page: %d, want 405", resp.StatusCode)
	}

	// A script signing out keeps its JSON answer (SECURITY.md E30).
	s := e.signIn("bob")
	st = s.state()
	resp := s.do(request{target: "/.mfa/logout", json: map[string]string{"csrf_token": st["csrf_token"].(string)}})
	if got := decodeJSON(t, resp); resp.StatusCode != http.StatusOK || got["step"] != stepSignedOut || got["redirect"] != "/.mfa/" {
		t.Errorf("JSON logout: %d %v", resp.StatusCode, got)
	}
}

// A browser still signed in is not told it is signed out: the page sends
// it to the signed-in page.
func TestSignedOutPageWhileSignedIn(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.signIn("alice")
	resp := b.do(request{target: "/.mfa/signed-out?return=%2Fapp", header: htmlAccept()})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/?return=%2Fapp" {
		t.Fatalf("signed in: %d %q, want 303 to the signed-in page", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// The page speaks every shipped language, and its language switcher
// comes back to it.
func TestSignedOutPageLanguages(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	for _, l := range i18n.Builtin().Languages() {
		hdr := htmlAccept()
		hdr.Set("Accept-Language", l.Tag())
		page := readBody(t, b.do(request{target: "/.mfa/signed-out", header: hdr}))
		for _, key := range []string{"title.signed_out", "signed_out.title", "signed_out.intro", "signed_out.sign_in"} {
			if !strings.Contains(html.UnescapeString(page), l.T(key)) {
				t.Errorf("%s: the page lacks %s %q", l.Tag(), key, l.T(key))
			}
		}
		if !strings.Contains(page, `name="return" value="/.mfa/signed-out"`) {
			t.Errorf("%s: the language switcher does not come back to the page", l.Tag())
		}
	}
	resp := b.do(request{target: "/.mfa/language", form: url.Values{"language": {"de"}, "return": {"/.mfa/signed-out?return=%2Fapp"}}, header: htmlAccept()})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/signed-out?return=%2Fapp" {
		t.Fatalf("switching language: %d %q, want back to the signed-out page", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// Ending this browser's own session on the account page lands on the
// signed-out page too.
func TestAccountEndOwnSessionLandsOnSignedOutPage(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.signIn("alice")
	page := readBody(t, b.do(request{target: "/.mfa/account", header: htmlAccept()}))
	m := regexp.MustCompile(`action="/.mfa/logout"[^>]*>\s*<input type="hidden" name="csrf_token" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no sign-out form on the account page:\n%s", page)
	}
	resp := b.do(request{target: "/.mfa/logout", form: url.Values{"csrf_token": {m[1]}}, header: htmlAccept()})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/signed-out" {
		t.Fatalf("sign-out from the account page: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Ending the browser's own session in the list of sessions.
	b = e.signIn("alice")
	v := decodeJSON(t, b.do(request{target: "/.mfa/account", header: jsonAccept}))
	var own string
	for _, s := range v["sessions"].([]any) {
		if m := s.(map[string]any); m["current"] == true {
			own = m["id"].(string)
		}
	}
	resp = b.do(request{target: "/.mfa/account", form: url.Values{"action": {actionEndSession}, "id": {own}, "csrf_token": {v["csrf_token"].(string)}}, header: htmlAccept()})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/signed-out" {
		t.Fatalf("ending the own session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if page := readBody(t, b.do(request{target: "/.mfa/signed-out", header: htmlAccept()})); !strings.Contains(page, "You are signed out") {
		t.Fatalf("after ending the own session:\n%s", page)
	}
}
