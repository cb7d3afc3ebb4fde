package caddymfa

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A sign-in form refused before it is read as one (an expired page
// token, an unknown method) ends in a 303 to the flow's page, which says
// why once; the refusal still refuses: nothing is sent and no attempt is
// used, and the code sent before still signs in.
func TestSignInEdgePostRedirectGet(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	csrf := b.state()["csrf_token"].(string)
	b.follow(b.do(request{target: "/.mfa/send", form: url.Values{"method": {"email"}, "csrf_token": {csrf}}, header: htmlAccept()})).Body.Close()
	code := e.lastCode()
	sent := len(e.outboxFiles())
	refused := func(path string, fields url.Values, status int, want string) {
		t.Helper()
		resp := b.do(request{target: path, form: fields, header: htmlAccept()})
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/" {
			t.Fatalf("POST %s %v: %d %q, want 303 /.mfa/", path, fields, resp.StatusCode, resp.Header.Get("Location"))
		}
		resp = b.follow(resp)
		if page := readBody(t, resp); resp.StatusCode != status || !strings.Contains(page, want) {
			t.Errorf("after POST %s: %d, want %d with %q:\n%s", path, resp.StatusCode, status, want, page)
		}
		resp = b.do(request{target: "/.mfa/", header: htmlAccept()})
		if page := readBody(t, resp); resp.StatusCode != http.StatusOK || strings.Contains(page, want) {
			t.Errorf("a reload after POST %s: %d, says %q again:\n%s", path, resp.StatusCode, want, page)
		}
	}
	refused("/.mfa/verify", url.Values{"method": {"email"}, "code": {code}, "csrf_token": {"expired"}}, http.StatusForbidden, "This page has expired.")
	refused("/.mfa/send", url.Values{"method": {"email"}, "csrf_token": {"expired"}}, http.StatusForbidden, "This page has expired.")
	refused("/.mfa/send", url.Values{"method": {"pigeon"}, "csrf_token": {csrf}}, http.StatusBadRequest, "Unknown method.")
	if n := len(e.outboxFiles()); n != sent {
		t.Errorf("refused forms sent %d messages", n-sent)
	}
	// JSON: the refusal itself.
	resp := b.do(request{method: http.MethodPost, target: "/.mfa/verify", json: map[string]string{"method": "email", "code": code, "csrf_token": "expired"}})
	if got := decodeJSON(t, resp); resp.StatusCode != http.StatusForbidden || got["error"] != errCodeCSRF {
		t.Errorf("JSON refusal: %d %v", resp.StatusCode, got)
	}
	// Nothing was used: the code still signs in.
	if resp := b.htmlCode(csrf, "email", code); resp.StatusCode != http.StatusSeeOther || !b.signedIn() {
		t.Fatalf("the code after the refusals: %d", resp.StatusCode)
	}
}
