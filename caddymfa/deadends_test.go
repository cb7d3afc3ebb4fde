package caddymfa

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A reload of a page a form was posted to, or a bookmark of it, goes
// back to the flow instead of an empty 405.
func TestGetOnPostPathGoesBackToFlow(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	html := http.Header{"Accept": {"text/html"}}
	for _, tc := range []struct {
		method, target, want string
	}{
		{http.MethodGet, "/.mfa/verify", "/.mfa/"},
		{http.MethodGet, "/.mfa/resend", "/.mfa/"},
		{http.MethodHead, "/.mfa/send", "/.mfa/"},
		{http.MethodGet, "/.mfa/identify", "/.mfa/"},
		{http.MethodGet, "/.mfa/logout", "/.mfa/"},
		{http.MethodGet, "/.mfa/verify?return=/docs%3Fa%3D1", "/.mfa/?return=%2Fdocs%3Fa%3D1"},
		{http.MethodGet, "/.mfa/verify?return=//evil.example", "/.mfa/"},
	} {
		t.Run(tc.method+" "+tc.target, func(t *testing.T) {
			resp := b.do(request{method: tc.method, target: tc.target, header: html})
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != tc.want {
				t.Fatalf("got %d %q, want 303 %q", resp.StatusCode, resp.Header.Get("Location"), tc.want)
			}
		})
	}
}

// A wrong code sends the browser back to the flow's page (303); a GET of
// /verify (a bookmark, an old history entry) shows the verify step again,
// with the attempts left.
func TestReloadAfterWrongCodeShowsVerifyStep(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	csrf := b.state()["csrf_token"].(string)
	b.do(request{target: "/.mfa/send", form: url.Values{"method": {"email"}, "csrf_token": {csrf}}})
	resp := b.do(request{target: "/.mfa/verify", form: url.Values{"method": {"email"}, "code": {"000000"}, "csrf_token": {csrf}}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/" {
		t.Fatalf("wrong code: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = b.do(request{target: "/.mfa/verify", header: http.Header{"Accept": {"text/html"}}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reload: %d", resp.StatusCode)
	}
	st := b.state()
	if st["step"] != stepVerify || st["attempts_left"] != float64(2) {
		t.Fatalf("after reload: %v", st)
	}
}

// Paths no endpoint has, and methods an endpoint does not take, answer
// a page (or JSON) that leads back to the sign-in.
func TestRefusalsOfferTheWayBack(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	for _, tc := range []struct {
		name, method, target string
		status               int
		code                 string
		allow                string
	}{
		{"unknown path", http.MethodGet, "/.mfa/nope", http.StatusNotFound, errCodeNotFound, ""},
		{"unknown nested path", http.MethodPost, "/.mfa/verify/x", http.StatusNotFound, errCodeNotFound, ""},
		{"totp not configured", http.MethodGet, "/.mfa/enroll/totp", http.StatusNotFound, errCodeNotFound, ""},
		{"put on a post path", http.MethodPut, "/.mfa/verify", http.StatusMethodNotAllowed, errCodeMethod, "POST"},
		{"post on the step", http.MethodPost, "/.mfa/", http.StatusMethodNotAllowed, errCodeMethod, "GET, HEAD"},
		{"delete on the link", http.MethodDelete, "/.mfa/link", http.StatusMethodNotAllowed, errCodeMethod, "GET, HEAD, POST"},
	} {
		t.Run(tc.name+" html", func(t *testing.T) {
			resp := b.do(request{method: tc.method, target: tc.target, header: http.Header{"Accept": {"text/html"}}})
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || resp.Header.Get("Allow") != tc.allow {
				t.Fatalf("got %d Allow %q, want %d %q", resp.StatusCode, resp.Header.Get("Allow"), tc.status, tc.allow)
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(body), `<a href="/.mfa/">Go to the sign-in page</a>`) {
				t.Fatalf("page has no way back: %s %s", resp.Header.Get("Content-Type"), body)
			}
			if resp.Header.Get("Content-Security-Policy") == "" {
				t.Fatal("no page headers")
			}
		})
		t.Run(tc.name+" json", func(t *testing.T) {
			resp := b.do(request{method: tc.method, target: tc.target, header: http.Header{"Accept": {"application/json"}}})
			if resp.StatusCode != tc.status {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.status)
			}
			m := decodeJSON(t, resp)
			if m["error"] != tc.code || m["redirect"] != "/.mfa/" {
				t.Fatalf("answer: %v", m)
			}
		})
	}
}

// Every error page offers a next step: a link to the flow.
func TestErrorPagesOfferNextStep(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	html := http.Header{"Accept": {"text/html"}}
	for _, tc := range []struct {
		name string
		rq   request
	}{
		{"expired csrf", request{target: "/.mfa/send", form: url.Values{"method": {"email"}, "csrf_token": {"stale"}}, header: html}},
		{"unknown path", request{target: "/.mfa/nope", header: html}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := b.do(tc.rq)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode < 400 || !strings.Contains(string(body), `<a href="/.mfa/">`) {
				t.Fatalf("%d: no next step: %s", resp.StatusCode, body)
			}
		})
	}
	t.Run("no first factor", func(t *testing.T) {
		resp := e.serve(request{target: "/.mfa/", header: html}, nil)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), `<a href="/.mfa/">`) {
			t.Fatalf("%d: no next step: %s", resp.StatusCode, body)
		}
	})
}
