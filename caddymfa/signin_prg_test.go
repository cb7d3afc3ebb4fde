package caddymfa

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// follow GETs, as a browser does, the page a form's 303 sends it to.
func (b *browser) follow(resp *http.Response) *http.Response {
	b.e.t.Helper()
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		b.e.t.Fatalf("form answered %d, want 303", resp.StatusCode)
	}
	return b.do(request{target: resp.Header.Get("Location"), header: htmlAccept()})
}

// htmlCode posts a code with the sign-in's HTML form.
func (b *browser) htmlCode(csrf, method, code string) *http.Response {
	b.e.t.Helper()
	return b.do(request{target: "/.mfa/verify", form: url.Values{"method": {method}, "code": {code}, "csrf_token": {csrf}}, header: htmlAccept()})
}

// A wrong code posted by the HTML form answers 303 to the flow's page,
// which shows the error and the attempts left once, tied to the field; a
// reload shows the form without the error and uses no attempt. The
// notice holds neither the code typed nor the address, and another
// flow's browser ignores it. JSON clients still get the answer itself.
func TestWrongCodePostRedirectGet(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	csrf := b.state()["csrf_token"].(string)
	if resp := b.do(request{target: "/.mfa/send", form: url.Values{"method": {"email"}, "csrf_token": {csrf}}, header: htmlAccept()}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("send: %d", resp.StatusCode)
	}
	code := e.lastCode()
	typed := wrongCode(code)
	resp := b.htmlCode(csrf, "email", typed)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/" {
		t.Fatalf("wrong code: %d %q, want 303 /.mfa/", resp.StatusCode, resp.Header.Get("Location"))
	}
	var notice *http.Cookie
	for _, c := range resp.Cookies() {
		if strings.HasPrefix(c.Name, "mfa_notice-") {
			notice = c
		}
	}
	if notice == nil {
		t.Fatalf("no notice cookie: %v", resp.Cookies())
	}
	payload, _, _ := strings.Cut(notice.Value, ".")
	for _, secret := range []string{typed, "alice", "example"} {
		if strings.Contains(notice.Value, secret) || strings.Contains(decodeB64(t, payload), secret) {
			t.Errorf("the notice carries %q: %s", secret, decodeB64(t, payload))
		}
	}

	// Another flow's browser with this notice: ignored.
	other := e.browser("alice")
	other.state()
	other.jar.SetCookies(&url.URL{Scheme: "http", Host: "app.test", Path: "/"}, []*http.Cookie{{Name: notice.Name, Value: notice.Value}})
	if len(other.jar.Cookies(&url.URL{Scheme: "http", Host: "app.test", Path: "/"})) < 2 {
		t.Fatal("the other browser lacks the notice")
	}
	if page := readBody(t, other.do(request{target: "/.mfa/", header: htmlAccept()})); strings.Contains(page, "not valid") {
		t.Errorf("a notice of another flow was shown:\n%s", page)
	}

	page := readBody(t, b.follow(resp))
	for _, want := range []string{`<p id="error" class="error" role="alert">That code is not valid.</p>`, `<p class="hint" id="attempts">2 attempts left.</p>`, `aria-invalid="true" aria-describedby="error attempts"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page after the redirect lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, typed) {
		t.Errorf("the page shows the code typed")
	}
	reload := b.do(request{target: "/.mfa/", header: htmlAccept()})
	page = readBody(t, reload)
	if reload.StatusCode != http.StatusOK || strings.Contains(page, `role="alert"`) || strings.Contains(page, "aria-invalid") {
		t.Errorf("reload: %d, the error said again:\n%s", reload.StatusCode, page)
	}
	if !strings.Contains(page, `<p class="hint" id="attempts">2 attempts left.</p>`) {
		t.Errorf("reload: the attempts left changed:\n%s", page)
	}
	if st := b.state(); st["attempts_left"] != 2.0 || st["error"] != nil {
		t.Errorf("after the GETs: %v", st)
	}

	// JSON clients: the failure itself, no redirect, no notice.
	resp = b.do(request{target: "/.mfa/verify", json: map[string]string{"method": "email", "code": typed, "csrf_token": csrf}})
	st := decodeJSON(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || st["attempts_left"] != 1.0 || len(resp.Cookies()) != 0 {
		t.Errorf("JSON wrong code: %d %v %v", resp.StatusCode, st, resp.Cookies())
	}
	// The right code still signs in (the GETs used no attempt).
	if resp := b.htmlCode(csrf, "email", code); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Errorf("right code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// An app code's failure lands on the app's code form.
func TestWrongAppCodeLandsOnAppForm(t *testing.T) {
	e := totpEnv(t, "")
	e.enrollApp("alice")
	e.clock.add(10 * time.Minute)
	b := e.browser("alice")
	csrf := b.state()["csrf_token"].(string)
	resp := b.htmlCode(csrf, "totp", "000000")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/?method=totp" {
		t.Fatalf("wrong app code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	page := readBody(t, b.follow(resp))
	if !strings.Contains(page, "That code is not valid.") || !strings.Contains(page, `value="totp"`) || strings.Contains(page, "attempts left") {
		t.Errorf("the page after the redirect:\n%s", page)
	}
	if page := readBody(t, b.do(request{target: "/.mfa/?method=totp", header: htmlAccept()})); strings.Contains(page, "not valid") || !strings.Contains(page, `value="totp"`) {
		t.Errorf("reload:\n%s", page)
	}
}

// SECURITY.md A7, with the HTML form: locked, wrong and expired answers
// are the same 303, and the pages they land on are the same.
func TestFailureAnswersIndistinguishableAfterRedirect(t *testing.T) {
	h, outbox := testConfig(t)
	h.Lockout = &Lockout{Failures: 3}
	e := newEnv(t, h, outbox)
	answer := func(b *browser, code string) string {
		csrf := b.state()["csrf_token"].(string)
		resp := b.htmlCode(csrf, "email", code)
		var names []string
		for _, c := range resp.Cookies() {
			names = append(names, c.Name)
		}
		head := fmt.Sprintf("%d %q %v", resp.StatusCode, resp.Header.Get("Location"), names)
		landed := b.follow(resp)
		page := readBody(t, landed)
		return head + fmt.Sprintf(" %d\n", landed.StatusCode) + csrfValues.ReplaceAllString(page, "CSRF")
	}
	if ans := wrongExpiredLocked(t, e, answer); !strings.Contains(ans, "That code is not valid.") || !strings.Contains(ans, "303") {
		t.Fatalf("wrong code answer:\n%s", ans)
	}
}

func decodeB64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("notice payload: %v", err)
	}
	return string(b)
}
