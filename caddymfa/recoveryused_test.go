package caddymfa

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

// After a sign-in with a recovery code the browser lands (303) on a page
// that says so, how many codes are left, and offers a new app, new codes
// or the site (the return path); in every shipped language. A session
// made with the app or an emailed code sees the usual settings.
func TestRecoveryCodeSignInExplained(t *testing.T) {
	e := totpEnv(t, totp.EnrollVerified)
	_, _, codes := e.enrollApp("alice")

	b := e.browser("alice")
	page := readBody(t, b.do(request{target: "/.mfa/?method=recovery&return=%2Fdocs", header: htmlAccept()}))
	resp := b.do(request{target: "/.mfa/verify", form: url.Values{"method": {"recovery"}, "code": {codes[0]}, "csrf_token": {csrfOf(t, page)}}, header: htmlAccept()})
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc != "/.mfa/enroll/totp?return=%2Fdocs" {
		t.Fatalf("recovery sign-in: %d %q", resp.StatusCode, loc)
	}
	for _, l := range i18n.Builtin().Languages() {
		hdr := htmlAccept()
		hdr.Set("Accept-Language", l.Tag())
		page = readBody(t, b.do(request{target: loc, header: hdr}))
		for _, want := range []string{
			`<h1 id="title">` + escapeText(l.T("recovery_used.title")) + `</h1>`,
			escapeText(l.T("recovery_used.spent")) + " " + escapeText(l.N("settings.recovery_left", 9)),
			`<a class="button" href="/.mfa/enroll/totp?replace=1&amp;return=%2Fdocs">` + escapeText(l.T("recovery_used.new_app")) + `</a>`,
			`<a class="button alt" href="/docs">` + escapeText(l.T("done.continue")) + `</a>`,
			`value="recovery_codes"`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("%s: the page lacks %q:\n%s", l.Tag(), want, page)
			}
		}
	}
	if st := decodeJSON(t, b.do(request{target: loc, header: jsonAccept})); st["recovery_code_used"] != true || st["recovery_codes_left"] != 9.0 {
		t.Errorf("JSON: %v", st)
	}

	// A session made with an emailed code: the usual settings.
	s := e.signIn("alice")
	page = readBody(t, s.do(request{target: "/.mfa/enroll/totp", header: htmlAccept()}))
	if strings.Contains(page, "recovery code</h1>") || !strings.Contains(page, "Your authenticator app</h1>") {
		t.Errorf("settings after an emailed code:\n%s", page)
	}
	if st := decodeJSON(t, s.do(request{target: "/.mfa/enroll/totp", header: jsonAccept})); st["recovery_code_used"] != nil {
		t.Errorf("JSON after an emailed code: %v", st)
	}
}
