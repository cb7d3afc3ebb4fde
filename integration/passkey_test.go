package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
	"github.com/caddymfa/caddy-mfa/internal/webauthntest"
)

// passkeyOptions is the answer of GET /passkey/register and /passkey/login.
type passkeyOptions struct {
	PublicKey json.RawMessage `json:"publicKey"`
	CSRFToken string          `json:"csrf_token"`
}

// passkeySite is a second-factor site for alice and bob (basic_auth, the
// same password) with emailed codes and passkeys.
func passkeySite(t *testing.T, srv *smtptest.Server, up *upstream, extra string) string {
	t.Helper()
	hash := bcryptHash(t, alicePassword)
	return globalOptions("") + `http://localhost:9080 {
	basic_auth {
		alice ` + hash + `
		bob ` + hash + `
	}
	mfa {
		base_url http://localhost:9080
		storage badger ` + t.TempDir() + `
		secret_key ` + testSecret + `
		users {
			alice email alice@example.com
			bob email bob@example.com
		}
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
		}
		passkey ` + extra + `
	}
	reverse_proxy ` + up.addr() + ` {
		header_up X-Mfa-User {http.auth.mfa.user}
		header_up X-Mfa-Method {http.auth.mfa.method}
	}
}
`
}

// options GETs the options of a passkey ceremony as JSON.
func (c *client) passkeyOptions(path string, status int) passkeyOptions {
	c.t.Helper()
	r := c.get(path, "application/json")
	if r.StatusCode != status {
		c.t.Fatalf("GET %s: status %d, want %d: %s", path, r.StatusCode, status, r.body)
	}
	var o passkeyOptions
	if status == http.StatusOK {
		if err := json.Unmarshal(r.body, &o); err != nil || len(o.PublicKey) == 0 || o.CSRFToken == "" {
			c.t.Fatalf("GET %s: %v: %s", path, err, r.body)
		}
	}
	return o
}

// postPasskey posts a JSON body with the CSRF token in X-CSRF-Token, as
// the page script does.
func (c *client) postPasskey(path, csrf string, body map[string]any) *response {
	c.t.Helper()
	b, _ := json.Marshal(body)
	req := c.newRequest(http.MethodPost, path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("X-CSRF-Token", csrf)
	return c.do(req)
}

// signInByEmail signs c in with an emailed code, the n-th message of srv.
func signInByEmail(t *testing.T, c *client, srv *smtptest.Server, n int) {
	t.Helper()
	c.get("/.mfa/", "text/html")
	code := sendCode(t, c, srv, n)
	if r := verify(t, c, code); r.StatusCode != http.StatusOK {
		t.Fatalf("verify: status %d: %s", r.StatusCode, r.body)
	}
}

// registerPasskey registers a passkey of auth for the signed-in c.
func registerPasskey(t *testing.T, c *client, auth *webauthntest.Authenticator, name string) map[string]any {
	t.Helper()
	o := c.passkeyOptions("/.mfa/passkey/register", http.StatusOK)
	resp, _, err := auth.Create(o.PublicKey, webauthntest.Tweak{})
	if err != nil {
		t.Fatal(err)
	}
	r := c.postPasskey("/.mfa/passkey/register", o.CSRFToken, map[string]any{"name": name, "credential": json.RawMessage(resp)})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("registering a passkey: status %d: %s", r.StatusCode, r.body)
	}
	return r.json(t)
}

// passkeyLogin starts a sign-in flow for c and answers the passkey
// options with auth, as tweaked; it returns the answer of POST
// /passkey/login.
func passkeyLogin(t *testing.T, c *client, auth *webauthntest.Authenticator, tw webauthntest.Tweak) *response {
	t.Helper()
	c.get("/.mfa/", "text/html")
	o := c.passkeyOptions("/.mfa/passkey/login", http.StatusOK)
	resp, err := auth.Get(o.PublicKey, tw)
	if err != nil {
		t.Fatal(err)
	}
	return c.postPasskey("/.mfa/passkey/login", o.CSRFToken, map[string]any{"credential": json.RawMessage(resp)})
}

func wantRefused(t *testing.T, r *response, what string) {
	t.Helper()
	if r.StatusCode != http.StatusUnauthorized || r.json(t)["error"] != "invalid_credential" {
		t.Fatalf("%s: status %d, want 401 invalid_credential: %s", what, r.StatusCode, r.body)
	}
}

// TestPasskeyRegisterAndSignIn drives a passkey through the HTTP
// contract with a software authenticator: registered from a session made
// by an emailed code, offered first on the choose step, then used to
// sign in; and what the site refuses (SECURITY.md P1, P2, P3, P4).
func TestPasskeyRegisterAndSignIn(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, passkeySite(t, srv, up, ""))
	const origin = "http://localhost:9080"
	auth := webauthntest.New(origin)

	// P4: no session, no registration.
	anon := newClient(t).withBasicAuth("alice", alicePassword)
	anon.get("/.mfa/", "text/html")
	anon.passkeyOptions("/.mfa/passkey/register", http.StatusForbidden)

	alice := newClient(t).withBasicAuth("alice", alicePassword)
	signInByEmail(t, alice, srv, 1)
	o := alice.passkeyOptions("/.mfa/passkey/register", http.StatusOK)
	var opts struct {
		RP struct {
			ID string `json:"id"`
		} `json:"rp"`
		Attestation string `json:"attestation"`
		Selection   struct {
			UserVerification string `json:"userVerification"`
		} `json:"authenticatorSelection"`
	}
	if err := json.Unmarshal(o.PublicKey, &opts); err != nil {
		t.Fatal(err)
	}
	if opts.RP.ID != "localhost" || (opts.Attestation != "" && opts.Attestation != "none") || opts.Selection.UserVerification != "preferred" {
		t.Fatalf("creation options: %s", o.PublicKey)
	}

	// Registration answers that must be refused, each over its own
	// challenge.
	for name, tw := range map[string]webauthntest.Tweak{
		"wrong origin":     {Origin: "http://evil.example:9080"},
		"wrong rp id hash": {RPID: "evil.example"},
		"other challenge":  {Challenge: []byte("0123456789abcdef0123456789abcdef")},
	} {
		o := alice.passkeyOptions("/.mfa/passkey/register", http.StatusOK)
		resp, _, err := webauthntest.New(origin).Create(o.PublicKey, tw)
		if err != nil {
			t.Fatal(err)
		}
		r := alice.postPasskey("/.mfa/passkey/register", o.CSRFToken, map[string]any{"name": name, "credential": json.RawMessage(resp)})
		if r.StatusCode != http.StatusBadRequest || r.json(t)["error"] != "invalid_credential" {
			t.Fatalf("registration with %s: status %d: %s", name, r.StatusCode, r.body)
		}
	}

	// A registration's challenge is single use: refused once, it is gone.
	{
		o := alice.passkeyOptions("/.mfa/passkey/register", http.StatusOK)
		bad, _, _ := webauthntest.New(origin).Create(o.PublicKey, webauthntest.Tweak{Origin: "http://evil.example"})
		if r := alice.postPasskey("/.mfa/passkey/register", o.CSRFToken, map[string]any{"credential": json.RawMessage(bad)}); r.StatusCode != http.StatusBadRequest {
			t.Fatalf("registration from another origin: status %d: %s", r.StatusCode, r.body)
		}
		good, _, _ := webauthntest.New(origin).Create(o.PublicKey, webauthntest.Tweak{})
		if r := alice.postPasskey("/.mfa/passkey/register", o.CSRFToken, map[string]any{"credential": json.RawMessage(good)}); r.StatusCode != http.StatusBadRequest {
			t.Fatalf("registration over a used challenge: status %d: %s", r.StatusCode, r.body)
		}
	}

	got := registerPasskey(t, alice, auth, "Laptop")
	list, _ := got["passkeys"].([]any)
	if len(list) != 1 || list[0].(map[string]any)["name"] != "Laptop" {
		t.Fatalf("registered passkeys: %v", got)
	}
	if m := waitMessage(t, srv, 2); !strings.Contains(m.text, "passkey") {
		t.Fatalf("notice of the new passkey: %q", m.text)
	}
	// The admin API shows the passkey, never its key.
	if status, body := admin(t, http.MethodGet, "/mfa/users/alice", ""); status != http.StatusOK {
		t.Fatalf("admin: %d %v", status, body)
	} else if ps, _ := body.(map[string]any)["passkeys"].([]any); len(ps) != 1 || ps[0].(map[string]any)["name"] != "Laptop" {
		t.Fatalf("admin shows passkeys %v", body)
	} else if _, leaked := ps[0].(map[string]any)["pk"]; leaked {
		t.Fatalf("admin shows the public key: %v", ps[0])
	}

	// Signed out (a new browser): the passkey comes first.
	c := newClient(t).withBasicAuth("alice", alicePassword)
	c.get("/.mfa/", "text/html")
	if st := c.state(); st["step"] != "choose" || len(st["methods"].([]any)) == 0 || st["methods"].([]any)[0] != "passkey" {
		t.Fatalf("choose step %v, want passkey first", st)
	}
	r := passkeyLogin(t, c, auth, webauthntest.Tweak{})
	if r.StatusCode != http.StatusOK || r.json(t)["step"] != "done" {
		t.Fatalf("passkey sign-in: status %d: %s", r.StatusCode, r.body)
	}
	if h, ok := protected(t, c, "/app"); !ok || h.Get("X-Mfa-Method") != "passkey" || h.Get("X-Mfa-User") != "alice" {
		t.Fatalf("after a passkey sign-in the upstream saw %v (reached %v)", h, ok)
	}

	// Bob's passkey, for the refusal of another user's credential.
	bobAuth := webauthntest.New(origin)
	bob := newClient(t).withBasicAuth("bob", alicePassword)
	signInByEmail(t, bob, srv, 3)
	registerPasskey(t, bob, bobAuth, "Phone")

	back := auth.Credentials()[0].Counter // the last counter sent
	for name, tw := range map[string]webauthntest.Tweak{
		"wrong origin":            {Origin: "http://evil.example:9080"},
		"wrong rp id hash":        {RPID: "evil.example"},
		"signature by other key":  {Key: webauthntest.NewKey()},
		"counter going backwards": {Counter: &back},
		"credential of bob":       {Credential: bobAuth.Credentials()[0]},
	} {
		t.Run(name, func(t *testing.T) {
			c := newClient(t).withBasicAuth("alice", alicePassword)
			wantRefused(t, passkeyLogin(t, c, auth, tw), name)
			if _, ok := protected(t, c, "/app"); ok {
				t.Fatal("a refused passkey signed in")
			}
		})
	}

	t.Run("replayed challenge", func(t *testing.T) {
		c := newClient(t).withBasicAuth("alice", alicePassword)
		c.get("/.mfa/", "text/html")
		o := c.passkeyOptions("/.mfa/passkey/login", http.StatusOK)
		bad, _ := auth.Get(o.PublicKey, webauthntest.Tweak{Key: webauthntest.NewKey()})
		wantRefused(t, c.postPasskey("/.mfa/passkey/login", o.CSRFToken, map[string]any{"credential": json.RawMessage(bad)}), "wrong key")
		good, _ := auth.Get(o.PublicKey, webauthntest.Tweak{})
		wantRefused(t, c.postPasskey("/.mfa/passkey/login", o.CSRFToken, map[string]any{"credential": json.RawMessage(good)}), "answer over a used challenge")
	})

	t.Run("challenge from another flow", func(t *testing.T) {
		a := newClient(t).withBasicAuth("alice", alicePassword)
		b := newClient(t).withBasicAuth("alice", alicePassword)
		a.get("/.mfa/", "text/html")
		b.get("/.mfa/", "text/html")
		oa := a.passkeyOptions("/.mfa/passkey/login", http.StatusOK)
		ob := b.passkeyOptions("/.mfa/passkey/login", http.StatusOK)
		overB, _ := auth.Get(ob.PublicKey, webauthntest.Tweak{})
		wantRefused(t, a.postPasskey("/.mfa/passkey/login", oa.CSRFToken, map[string]any{"credential": json.RawMessage(overB)}), "b's challenge answered in a's flow")
		if _, ok := protected(t, a, "/app"); ok {
			t.Fatal("a challenge of another flow signed in")
		}
	})

	// The account page lists the passkey; a session fresh from the
	// passkey renames and removes it there.
	st := c.get("/.mfa/account", "application/json").json(t)
	var id string
	for _, m := range st["methods"].([]any) {
		if m := m.(map[string]any); m["kind"] == "passkey" && m["name"] == "Laptop" && m["added"] != nil && m["last_used"] != nil {
			id, _ = m["id"].(string)
		}
	}
	if id == "" || st["passkey_page"] != "/.mfa/passkey/register" {
		t.Fatalf("the account page lists no passkey: %v", st)
	}
	csrf := st["csrf_token"].(string)
	r = c.postJSON("/.mfa/account", map[string]string{"csrf_token": csrf, "action": "rename_passkey", "id": id, "name": "Work laptop"})
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), `"name":"Work laptop"`) {
		t.Fatalf("rename on the account page: %d %s", r.StatusCode, r.body)
	}
	r = c.postJSON("/.mfa/account", map[string]string{"csrf_token": csrf, "action": "remove_passkey", "id": id})
	if r.StatusCode != http.StatusOK || strings.Contains(string(r.body), `"kind":"passkey"`) {
		t.Fatalf("remove on the account page: %d %s", r.StatusCode, r.body)
	}
	if st := newClient(t).withBasicAuth("alice", alicePassword).state(); slices.Contains(st["methods"].([]any), any("passkey")) {
		t.Fatalf("a removed passkey is still offered: %v", st)
	}

}

// TestPasskeyPasswordless signs in with a discoverable passkey from the
// identify page of a standalone site, no name typed; failures count in
// the lockout like codes (SECURITY.md P5).
func TestPasskeyPasswordless(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, site{
		upstream: up.addr(),
		mfa: `		user ""
		base_url http://localhost:9080
		storage badger ` + t.TempDir() + `
		secret_key ` + testSecret + `
		users {
			bob email bob@example.com
		}
		lockout 3 15m
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
		}
		passkey {
			passwordless on
			user_verification required
		}`,
	}.caddyfile())
	auth := webauthntest.New("http://localhost:9080")

	c := newClient(t)
	c.get("/.mfa/", "text/html")
	if r := c.postJSON("/.mfa/identify", map[string]string{"username": "bob"}); r.StatusCode != http.StatusOK {
		t.Fatalf("identify: %d %s", r.StatusCode, r.body)
	}
	code := sendCode(t, c, srv, 1)
	if r := verify(t, c, code); r.StatusCode != http.StatusOK {
		t.Fatalf("verify: %d %s", r.StatusCode, r.body)
	}
	registerPasskey(t, c, auth, "Phone")

	// A new browser: the identify page offers the passkey.
	p := newClient(t)
	if page := p.get("/.mfa/", "text/html"); !bytes.Contains(page.body, []byte("data-passkey-login")) || !bytes.Contains(page.body, []byte(`src="/.mfa/passkey.js"`)) {
		t.Fatalf("the identify page offers no passkey:\n%s", page.body)
	} else if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Fatalf("CSP %q", csp)
	}
	if js := p.get("/.mfa/passkey.js", "*/*"); js.StatusCode != http.StatusOK || !strings.HasPrefix(js.Header.Get("Content-Type"), "text/javascript") {
		t.Fatalf("passkey.js: %d %s", js.StatusCode, js.Header.Get("Content-Type"))
	}
	if st := p.state(); st["step"] != "identify" || st["passwordless"] != true {
		t.Fatalf("identify step %v", st)
	}
	o := p.passkeyOptions("/.mfa/passkey/login", http.StatusOK)
	if bytes.Contains(o.PublicKey, []byte("allowCredentials")) {
		t.Fatalf("passwordless options list credentials: %s", o.PublicKey)
	}
	resp, err := auth.Get(o.PublicKey, webauthntest.Tweak{})
	if err != nil {
		t.Fatal(err)
	}
	r := p.postPasskey("/.mfa/passkey/login", o.CSRFToken, map[string]any{"credential": json.RawMessage(resp)})
	if r.StatusCode != http.StatusOK || r.json(t)["user"] != "bob" {
		t.Fatalf("passwordless sign-in: %d %s", r.StatusCode, r.body)
	}
	if h, ok := protected(t, p, "/app"); !ok || h.Get("X-Mfa-User") != "bob" || h.Get("X-Mfa-Method") != "passkey" {
		t.Fatalf("after passwordless sign-in the upstream saw %v (%v)", h, ok)
	}

	// A handle nobody has counts nowhere and signs in nobody.
	q := newClient(t)
	wantRefused(t, passkeyLogin(t, q, auth, webauthntest.Tweak{UserHandle: []byte("nobody-has-this-handle")}), "unknown user handle")

	// Three signatures by the wrong key lock bob out for this network:
	// then even his own passkey is refused.
	for i := range 3 {
		wantRefused(t, passkeyLogin(t, newClient(t), auth, webauthntest.Tweak{Key: webauthntest.NewKey()}), "wrong key "+string(rune('1'+i)))
	}
	wantRefused(t, passkeyLogin(t, newClient(t), auth, webauthntest.Tweak{}), "a locked user's own passkey")
}

// TestPasskeyProvisionErrors: passkeys need base_url, and passwordless
// needs standalone mode (SECURITY.md P1).
func TestPasskeyProvisionErrors(t *testing.T) {
	up := newUpstream(t)
	for name, tc := range map[string]struct{ mfa, want string }{
		"no base_url": {`users {
			alice email alice@example.com
		}
		email {
			outbox ` + t.TempDir() + `
		}
		passkey`, "base_url"},
		"passwordless with a first factor": {`base_url http://localhost:9080
		users {
			alice email alice@example.com
		}
		email {
			outbox ` + t.TempDir() + `
		}
		passkey {
			passwordless on
		}`, "standalone"},
	} {
		t.Run(name, func(t *testing.T) {
			err := loadCaddyfile(site{upstream: up.addr(), mfa: "storage badger " + t.TempDir() + "\n" + tc.mfa}.caddyfile())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("load: %v, want an error about %s", err, tc.want)
			}
		})
	}
}
