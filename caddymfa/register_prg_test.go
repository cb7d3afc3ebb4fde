package caddymfa

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// Every form of the registration pages ends in a 303 to a GET that shows
// the next step or the error, so a reload posts nothing and never meets a
// 405: a bad address, the code sent, a wrong code (attempts left kept),
// an expired page token, the last attempt spent, and the right code. The
// error is said once; the cookie that carried it holds no address or code.
func TestRegistrationPostRedirectGet(t *testing.T) {
	e, tw := registerEnv(t)
	_, secret, _ := e.enrollApp("alice")
	e.clock.add(time.Minute)
	b := e.browser("alice")
	b.do(request{target: "/.mfa/register/phone?return=%2Fsettings", header: htmlAccept()}).Body.Close()
	if resp := b.postJSON("/verify", map[string]string{"method": "totp", "code": e.code(secret, 0)}); resp.StatusCode != http.StatusOK {
		t.Fatalf("app: %d", resp.StatusCode)
	}
	const formURL = "/.mfa/register/phone?start=1&return=%2Fsettings"
	const codeURL = "/.mfa/register/phone?start=1&step=verify&return=%2Fsettings"
	page := readBody(t, b.do(request{target: formURL, header: htmlAccept()}))
	token := csrfOf(t, page)

	post := func(fields url.Values, wantLoc string) {
		t.Helper()
		fields.Set("csrf_token", token)
		fields.Set("return", "/settings")
		resp := b.do(request{target: "/.mfa/register/phone", form: fields, header: htmlAccept()})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != wantLoc {
			t.Fatalf("POST %v: %d %q, want 303 %q", fields, resp.StatusCode, resp.Header.Get("Location"), wantLoc)
		}
		for _, c := range resp.Cookies() {
			if strings.Contains(c.Value, "0177") || strings.Contains(c.Value, "0199") {
				t.Errorf("cookie %s carries the address", c.Name)
			}
		}
	}
	show := func(target string, status int, wants ...string) string {
		t.Helper()
		return b.showPage(t, target, status, wants...)
	}

	// A bad address: back to the form, with the error, once.
	post(url.Values{"action": {"send"}, "address": {"12"}}, formURL)
	show(formURL, http.StatusBadRequest, `role="alert"`, "starting with &#43; and the country code", `id="address"`)
	if page := show(formURL, http.StatusOK); strings.Contains(page, `role="alert"`) {
		t.Errorf("the error is said again on reload:\n%s", page)
	}

	// The code sent: the code form, and again on reload.
	post(url.Values{"action": {"send"}, "address": {"+12015550177"}}, codeURL)
	code, _ := lastText(t, tw)
	for range 2 {
		show(codeURL, http.StatusOK, "Enter the code", "+1*******77", "3 attempts left.", `value="confirm"`)
	}

	// A wrong code: the code form with the error and the attempts left.
	post(url.Values{"action": {"confirm"}, "code": {wrongCode(code)}}, codeURL)
	show(codeURL, http.StatusUnauthorized, "That code is not valid.", "2 attempts left.", `aria-invalid="true"`)
	show(codeURL, http.StatusOK, "2 attempts left.")

	// An expired page token: the same page, saying so.
	saved := token
	token = "expired"
	post(url.Values{"action": {"confirm"}, "code": {code}}, formURL)
	token = saved
	show(formURL, http.StatusForbidden, "This page has expired.")

	// The right code: to the return path.
	post(url.Values{"action": {"confirm"}, "code": {code}}, "/settings")
	if rec, err := e.h.users.load(t.Context(), "alice"); err != nil || rec.Phone != "+12015550177" {
		t.Fatalf("phone after confirming: %q, %v", rec.Phone, err)
	}

	// The last attempt spent: back to the address form, told to send anew;
	// the code form no longer shows.
	// (A factor change gives the browser a new session, and the page a
	// new token.)
	token = csrfOf(t, show(formURL, http.StatusOK))
	post(url.Values{"action": {"send"}, "address": {"+12015550199"}}, codeURL)
	code, _ = lastText(t, tw)
	post(url.Values{"action": {"confirm"}, "code": {wrongCode(code)}}, codeURL)
	post(url.Values{"action": {"confirm"}, "code": {wrongCode(code)}}, codeURL)
	post(url.Values{"action": {"confirm"}, "code": {wrongCode(code)}}, formURL)
	show(formURL, http.StatusUnauthorized, "no attempts are left", `id="address"`)
	if page := show(codeURL, http.StatusOK, `id="address"`); strings.Contains(page, `value="confirm"`) {
		t.Errorf("the code form shows after its last attempt:\n%s", page)
	}
}
