package caddymfa

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// showPage GETs target as a browser's page and checks its status and
// that it says each of wants; it returns the page.
func (b *browser) showPage(t *testing.T, target string, status int, wants ...string) string {
	t.Helper()
	resp := b.do(request{target: target, header: htmlAccept()})
	page := readBody(t, resp)
	if resp.StatusCode != status {
		t.Errorf("GET %s: status %d, want %d:\n%s", target, resp.StatusCode, status, page)
	}
	for _, w := range wants {
		if !strings.Contains(page, w) {
			t.Errorf("GET %s lacks %q:\n%s", target, w, page)
		}
	}
	return page
}

// otpauthOf is the otpauth link of an enrollment page, which names the
// secret it shows.
func otpauthOf(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`href="(otpauth://[^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no otpauth link:\n%s", page)
	}
	return m[1]
}

// Every refused form of the authenticator app's pages ends in a 303 to
// GET /enroll/totp (the setup with ?replace=1 and the return path kept),
// which says the error once and shows the same secret; a reload posts
// nothing and spends no try: a wrong first code, an expired page token, a
// wrong code of the current app when replacing it or renewing recovery
// codes. SECURITY.md C19: the secret stays server-side, bound to the
// session; the notice cookie carries no code or secret.
func TestEnrollPostRedirectGet(t *testing.T) {
	e := totpEnv(t, "")
	b := e.signIn("alice")
	const setupURL = "/.mfa/enroll/totp?return=%2Fdocs"
	const replaceURL = "/.mfa/enroll/totp?replace=1&return=%2Fdocs"
	show := func(target string, status int, wants ...string) string {
		t.Helper()
		return b.showPage(t, target, status, wants...)
	}
	var token, secret string
	post := func(fields url.Values, wantLoc string) {
		t.Helper()
		if fields.Get("csrf_token") == "" {
			fields.Set("csrf_token", token)
		}
		fields.Set("return", "/docs")
		resp := b.do(request{target: "/.mfa/enroll/totp", form: fields, header: htmlAccept()})
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != wantLoc {
			t.Fatalf("POST %v: %d %q, want 303 %q", fields, resp.StatusCode, resp.Header.Get("Location"), wantLoc)
		}
		for _, c := range resp.Cookies() {
			for _, v := range fields {
				if len(v[0]) >= 6 && v[0] != token && strings.Contains(c.Value, v[0]) {
					t.Errorf("cookie %s carries %q", c.Name, v[0])
				}
			}
			if secret != "" && strings.Contains(c.Value, secret) {
				t.Errorf("cookie %s carries the secret", c.Name)
			}
		}
	}
	calm := func(target string) string {
		t.Helper()
		page := show(target, http.StatusOK)
		if strings.Contains(page, `role="alert"`) || strings.Contains(page, "not valid") {
			t.Errorf("GET %s says the error again:\n%s", target, page)
		}
		return page
	}

	page := show(setupURL, http.StatusOK)
	token, link := csrfOf(t, page), otpauthOf(t, page)
	u, _ := url.Parse(link)
	secret = u.Query().Get("secret")

	// A wrong first code: the same QR code, with the error, once.
	post(url.Values{"code": {wrongCode(e.code(secret, 0))}}, setupURL)
	page = show(setupURL, http.StatusUnauthorized, "That code is not valid.", `role="alert"`)
	if otpauthOf(t, page) != link {
		t.Error("the page after a wrong code shows another secret")
	}
	if otpauthOf(t, calm(setupURL)) != link {
		t.Error("a reload shows another secret")
	}
	// The GETs spent no try: one wrong code is counted.
	if keys := e.storeKeys(keyEnroll); len(keys) != 1 {
		t.Errorf("pending secrets: %v", keys)
	} else if rec, err := e.h.store.Get(t.Context(), keys[0]); err != nil {
		t.Error(err)
	} else if pe, err := decodeRecord[pendingEnrollment](rec.Value); err != nil || pe.Tries != 1 {
		t.Errorf("tries after one wrong code and two GETs: %d, %v", pe.Tries, err)
	}

	// An expired page token: refused, said once.
	post(url.Values{"code": {e.code(secret, 0)}, "csrf_token": {"expired"}}, setupURL)
	show(setupURL, http.StatusForbidden, "This page has expired.")
	calm(setupURL)

	// The right code: the recovery codes.
	resp := b.do(request{target: "/.mfa/enroll/totp", form: url.Values{"code": {e.code(secret, 0)}, "csrf_token": {token}, "return": {"/docs"}}, header: htmlAccept()})
	if body := readBody(t, resp); resp.StatusCode != http.StatusOK || !strings.Contains(body, "recovery") {
		t.Fatalf("confirm: %d\n%s", resp.StatusCode, body)
	}
	e.clock.add(time.Minute)

	// Renewing the recovery codes with a wrong code: the settings, once.
	const settingsURL = "/.mfa/enroll/totp?return=%2Fdocs"
	token = csrfOf(t, show(settingsURL, http.StatusOK))
	post(url.Values{"action": {"recovery_codes"}, "current_code": {wrongCode(e.code(secret, 0))}}, settingsURL)
	show(settingsURL, http.StatusUnauthorized, "That code is not valid.")
	calm(settingsURL)

	// Replacing the app with a wrong current code: the setup, once.
	page = show(replaceURL, http.StatusOK)
	token, link = csrfOf(t, page), otpauthOf(t, page)
	u, _ = url.Parse(link)
	secret2 := u.Query().Get("secret")
	post(url.Values{"current_code": {wrongCode(e.code(secret, 0))}, "code": {e.code(secret2, 0)}}, replaceURL)
	page = show(replaceURL, http.StatusUnauthorized, "The code of your current app or the recovery code is not valid.")
	if otpauthOf(t, page) != link {
		t.Error("the page after a wrong current code shows another secret")
	}
	calm(replaceURL)
}
