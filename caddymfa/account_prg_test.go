package caddymfa

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// A refused change on the account page ends in a 303 to GET /account,
// which says why once; a reload posts nothing and ends nothing: a
// session ended from an old session (SECURITY.md N61's re-auth), an
// expired page token, a session already ended. JSON answers are the
// refusal itself.
func TestAccountPostRedirectGet(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	a := e.signIn("alice")
	b := e.signIn("alice")
	show := func(status int, wants ...string) string {
		t.Helper()
		return a.showPage(t, "/.mfa/account", status, wants...)
	}
	calm := func() string {
		t.Helper()
		page := show(http.StatusOK)
		if strings.Contains(page, `role="alert"`) {
			t.Errorf("the account page says the error again:\n%s", page)
		}
		return page
	}
	post := func(fields url.Values) {
		t.Helper()
		resp := a.do(request{target: "/.mfa/account", form: fields, header: htmlAccept()})
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/account" {
			t.Fatalf("POST %v: %d %q, want 303 /.mfa/account", fields, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp := a.do(request{target: "/.mfa/account", header: http.Header{"Accept": {"application/json"}}})
	v := decodeJSON(t, resp)
	csrf := v["csrf_token"].(string)
	var other string
	for _, s := range v["sessions"].([]any) {
		if m := s.(map[string]any); m["current"] != true {
			other = m["id"].(string)
		}
	}
	stillOn := func() {
		t.Helper()
		if _, ok := e.h.sessions.check(t.Context(), cookieOf(t, b), "alice", "app.test"); !ok {
			t.Fatal("a refused request ended the other session")
		}
	}

	// An expired page token.
	post(url.Values{"action": {"end_session"}, "id": {other}, "csrf_token": {"expired"}})
	show(http.StatusForbidden, "This page has expired.", `role="alert"`)
	calm()
	stillOn()

	// An old session may not end another without a code.
	e.clock.add(accountFreshness + time.Minute)
	post(url.Values{"action": {"end_session"}, "id": {other}, "csrf_token": {csrf}})
	show(http.StatusForbidden, "Confirm it&#39;s you with a code first", `role="alert"`)
	calm()
	stillOn()

	// JSON: the refusal itself, no redirect.
	resp = a.do(request{method: http.MethodPost, target: "/.mfa/account", json: map[string]string{"action": "end_session", "id": other, "csrf_token": csrf}})
	if got := decodeJSON(t, resp); resp.StatusCode != http.StatusForbidden || got["error"] != errCodeReauth {
		t.Errorf("JSON refusal: %d %v", resp.StatusCode, got)
	}

	// Another browser cannot read the notice meant for this one.
	post(url.Values{"action": {"nonsense"}, "csrf_token": {csrf}})
	if page := readBody(t, b.do(request{target: "/.mfa/account", header: htmlAccept()})); strings.Contains(page, "Unknown action") {
		t.Error("another browser's page shows the notice")
	}
	show(http.StatusBadRequest, "Unknown action.")
	calm()
}
