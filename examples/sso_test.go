package examples

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// TestSSO runs examples/sso (SECURITY.md K49): alice signs in at
// wiki.example.com and is signed in at app.example.com too, through the
// session cookie of the whole domain; a sign-in at app.example.com returns
// to a page of wiki.example.com when asked to, and to no other host.
func TestSSO(t *testing.T) {
	srv := Start(t, "sso", Options{})
	mailbox := filepath.Join(srv.Dir, "mailbox")
	const wiki, app = "http://wiki.example.com:8080", "http://app.example.com:8080"
	signIn := func(c *http.Client, site, start string, n int) string {
		t.Helper()
		page := func(path string) string {
			return wantStatus(t, do(t, c, get(t, site+path, "", "", "text/html")), http.StatusOK)
		}
		p := page(start)
		resp := do(t, c, postForm(t, site+"/.mfa/identify", "", "", url.Values{"csrf_token": {csrfToken(t, p)}, "username": {"alice"}}))
		wantStatus(t, resp, http.StatusSeeOther)
		msg := WaitOutbox(t, mailbox, n)
		p = page("/.mfa/")
		resp = do(t, c, postForm(t, site+"/.mfa/verify", "", "", url.Values{"csrf_token": {csrfToken(t, p)}, "method": {"email"}, "code": {msg.Code}}))
		wantStatus(t, resp, http.StatusSeeOther)
		for _, ck := range resp.Cookies() {
			if strings.HasPrefix(ck.Name, "mfa_session-") && ck.Domain != "example.com" {
				t.Errorf("session cookie %s has Domain %q, want example.com", ck.Name, ck.Domain)
			}
		}
		return resp.Header.Get("Location")
	}
	body := func(c *http.Client, target string) string {
		t.Helper()
		return wantStatus(t, do(t, c, get(t, target, "", "", "text/html")), http.StatusOK)
	}

	c := srv.Client()
	resp := do(t, c, get(t, wiki+"/page", "", "", "text/html"))
	wantStatus(t, resp, http.StatusFound)
	if loc := signIn(c, wiki, resp.Header.Get("Location"), 1); loc != "/page" {
		t.Fatalf("after the code at the wiki, Location %q, want /page", loc)
	}
	if got := body(c, wiki+"/page"); got != "Wiki: hello alice." {
		t.Fatalf("wiki: %q", got)
	}
	if got := body(c, app+"/"); got != "App: hello alice." {
		t.Fatalf("app, signed in at the wiki: %q", got)
	}

	// A sign-in at the app may end at the wiki, and at no other host.
	c = srv.Client()
	if loc := signIn(c, app, "/.mfa/?return="+url.QueryEscape(wiki+"/x"), 2); loc != wiki+"/x" {
		t.Fatalf("return to the wiki: Location %q", loc)
	}
	c = srv.Client()
	if loc := signIn(c, app, "/.mfa/?return="+url.QueryEscape("http://example.com.evil.test/x"), 3); loc != "/" {
		t.Fatalf("return to another host: Location %q, want /", loc)
	}
}
