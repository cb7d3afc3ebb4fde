package examples

import (
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddymfa/caddy-mfa/internal/webauthntest"
)

// TestPasskeys follows examples/passkeys/README.md with a software
// authenticator: alice signs in with the emailed code, adds a passkey,
// then, in a new browser, signs in with "Sign in with a passkey" and no
// name.
func TestPasskeys(t *testing.T) {
	srv := Start(t, "passkeys", Options{})
	const site = "http://localhost:8080"
	auth := webauthntest.New(site)
	c := srv.Client()

	// 1. Name and emailed code.
	resp := do(t, c, get(t, site+"/.mfa/", "", "", "text/html"))
	page := wantStatus(t, resp, http.StatusOK)
	resp = do(t, c, postForm(t, site+"/.mfa/identify", "", "", url.Values{"csrf_token": {csrfToken(t, page)}, "username": {"alice"}}))
	wantStatus(t, resp, http.StatusSeeOther)
	page = wantStatus(t, do(t, c, get(t, site+"/.mfa/", "", "", "text/html")), http.StatusOK)
	resp = do(t, c, postForm(t, site+"/.mfa/send", "", "", url.Values{"csrf_token": {csrfToken(t, page)}, "method": {"email"}}))
	wantStatus(t, resp, http.StatusSeeOther)
	msg := WaitOutbox(t, filepath.Join(srv.Dir, "mailbox"), 1)
	page = wantStatus(t, do(t, c, get(t, site+"/.mfa/", "", "", "text/html")), http.StatusOK)
	resp = do(t, c, postForm(t, site+"/.mfa/verify", "", "", url.Values{"csrf_token": {csrfToken(t, page)}, "method": {"email"}, "code": {msg.Code}}))
	wantStatus(t, resp, http.StatusSeeOther)

	// 2. The passkey page, and a passkey added through its JSON.
	page = wantStatus(t, do(t, c, get(t, site+"/.mfa/", "", "", "text/html")), http.StatusOK)
	if !strings.Contains(page, `href="/.mfa/passkey/register"`) {
		t.Fatalf("the signed-in page has no link to the passkey page:\n%s", page)
	}
	page = wantStatus(t, do(t, c, get(t, site+"/.mfa/passkey/register", "", "", "text/html")), http.StatusOK)
	if !strings.Contains(page, "data-passkey-register") || !strings.Contains(page, "no passkey yet") {
		t.Fatalf("the passkey page:\n%s", page)
	}
	var opts struct {
		PublicKey json.RawMessage `json:"publicKey"`
		CSRFToken string          `json:"csrf_token"`
	}
	if err := json.Unmarshal([]byte(wantStatus(t, do(t, c, get(t, site+"/.mfa/passkey/register", "", "", "application/json")), http.StatusOK)), &opts); err != nil {
		t.Fatal(err)
	}
	cred, _, err := auth.Create(opts.PublicKey, webauthntest.Tweak{})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, do(t, c, postJSON(t, site+"/.mfa/passkey/register", map[string]any{"csrf_token": opts.CSRFToken, "name": "Laptop", "credential": json.RawMessage(cred)})), http.StatusOK)

	// 3. A new browser: "Sign in with a passkey", no name.
	c = srv.Client()
	page = wantStatus(t, do(t, c, get(t, site+"/.mfa/", "", "", "text/html")), http.StatusOK)
	if !strings.Contains(page, "Sign in with a passkey") {
		t.Fatalf("the sign-in page offers no passkey:\n%s", page)
	}
	if err := json.Unmarshal([]byte(wantStatus(t, do(t, c, get(t, site+"/.mfa/passkey/login", "", "", "application/json")), http.StatusOK)), &opts); err != nil {
		t.Fatal(err)
	}
	assertion, err := auth.Get(opts.PublicKey, webauthntest.Tweak{})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, do(t, c, postJSON(t, site+"/.mfa/passkey/login", map[string]any{"csrf_token": opts.CSRFToken, "credential": json.RawMessage(assertion)})), http.StatusOK)
	if body, want := wantStatus(t, do(t, c, get(t, site+"/", "", "", "text/html")), http.StatusOK), "Hello alice, you passed MFA (passkey)."; body != want {
		t.Fatalf("body = %q, want %q", body, want)
	}
}
