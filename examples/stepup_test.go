package examples

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// TestStepUp runs examples/step-up as a browser would (SECURITY.md K50):
// alice sets up her app after an emailed code, signs in again by email,
// and opens /admin/: she is led to the app-code form, not refused, and
// after the app's code she is back on the admin page she asked for, while
// the rest of the site took the emailed code. A script gets 401
// step_up_required with the accepted methods.
func TestStepUp(t *testing.T) {
	srv := Start(t, "step-up", Options{})
	const site = "http://localhost:8080"
	mailbox := filepath.Join(srv.Dir, "mailbox")
	c := srv.Client()
	page := func(path string) string {
		t.Helper()
		return wantStatus(t, do(t, c, get(t, site+path, "alice", "alice", "text/html")), http.StatusOK)
	}
	post := func(path string, form url.Values) *http.Response {
		t.Helper()
		return do(t, c, postForm(t, site+path, "alice", "alice", form))
	}
	emailSignIn := func(n int) *http.Response {
		t.Helper()
		p := page("/.mfa/")
		wantStatus(t, post("/.mfa/send", url.Values{"csrf_token": {csrfToken(t, p)}, "method": {"email"}}), http.StatusSeeOther)
		msg := WaitOutbox(t, mailbox, n)
		p = page("/.mfa/")
		resp := post("/.mfa/verify", url.Values{"csrf_token": {csrfToken(t, p)}, "method": {"email"}, "code": {msg.Code}})
		wantStatus(t, resp, http.StatusSeeOther)
		return resp
	}

	// 1. The emailed code, then the app is set up.
	setup := emailSignIn(1).Header.Get("Location")
	p := page(setup)
	m := secretPattern.FindStringSubmatch(p)
	if m == nil {
		t.Fatalf("no key on the setup page %s:\n%s", setup, p)
	}
	secret := m[1]
	now := time.Now()
	wantStatus(t, post("/.mfa/enroll/totp", url.Values{
		"csrf_token": {csrfToken(t, p)}, "action": {"confirm"}, "return": {"/"}, "code": {totpref.Code(secret, now, 0)},
	}), http.StatusOK)

	// 2. Signed out, then in again by email: the site opens, /admin/
	// leads into the app-code form.
	p = page("/.mfa/")
	wantStatus(t, post("/.mfa/logout", url.Values{"csrf_token": {csrfToken(t, p)}}), http.StatusSeeOther)
	emailSignIn(2)
	if body := page("/"); body != "Hello alice, you passed MFA (email)." {
		t.Fatalf("site after the emailed code: %q", body)
	}
	resp := do(t, c, get(t, site+"/admin/users", "alice", "alice", "application/json"))
	var v struct {
		Error   string   `json:"error"`
		Methods []string `json:"methods"`
	}
	if err := json.Unmarshal([]byte(wantStatus(t, resp, http.StatusUnauthorized)), &v); err != nil || v.Error != "step_up_required" || strings.Join(v.Methods, " ") != "totp" {
		t.Fatalf("/admin/users as a script: %v %+v", err, v)
	}
	resp = do(t, c, get(t, site+"/admin/users", "alice", "alice", "text/html"))
	wantStatus(t, resp, http.StatusFound)
	loc := resp.Header.Get("Location")
	if !strings.HasPrefix(loc, "/.mfa/?return=%2Fadmin%2Fusers&step_up=totp") {
		t.Fatalf("/admin/users: Location %q, want the step-up challenge", loc)
	}
	p = page(loc)
	if !strings.Contains(p, "Enter the code from your app") || strings.Contains(p, "Email me a code") {
		t.Fatalf("the step-up page is not the app-code form:\n%s", p)
	}
	resp = post("/.mfa/verify", url.Values{"csrf_token": {csrfToken(t, p)}, "method": {"totp"}, "code": {totpref.Code(secret, now, 1)}})
	wantStatus(t, resp, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/admin/users" {
		t.Fatalf("after the app code, Location %q, want /admin/users", loc)
	}
	if body := page("/admin/users"); body != "Admin: hello alice (totp)." {
		t.Fatalf("admin page: %q", body)
	}
}
