package examples

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// tested names the examples that have a sign-in test below; TestEveryExample
// fails when a folder is added without one.
var tested = []string{"basic-auth-smtp", "branding", "passkeys", "quickstart", "redis", "remember", "sms-outbox", "sms-twilio", "sso", "standalone", "step-up", "totp"}

func TestEveryExample(t *testing.T) {
	if got := Names(); !slices.Equal(got, tested) {
		t.Fatalf("examples = %q, tested = %q: add a sign-in test for each example", got, tested)
	}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			body, err := Caddyfile(name)
			if err != nil {
				t.Fatal(err)
			}
			if formatted := caddyfile.Format(body); !bytes.Equal(formatted, body) {
				t.Errorf("Caddyfile is not formatted; run: caddy fmt --overwrite examples/%s/Caddyfile", name)
			}
			if _, warnings, err := Adapt(name); err != nil {
				t.Fatal(err)
			} else if len(warnings) > 0 {
				t.Errorf("adapter warnings: %v", warnings)
			}
			if _, err := os.Stat(filepath.Join(name, "README.md")); err != nil {
				t.Errorf("every example needs a README.md: %v", err)
			}
		})
	}
}

// TestQuickstart signs in through examples/quickstart as a browser would:
// basic auth, the redirect to the sign-in page, "Email me a code", the
// code from the .eml file in ./mailbox, then the protected page.
func TestQuickstart(t *testing.T) {
	srv := Start(t, "quickstart", Options{})
	c := srv.Client()
	const site = "http://localhost:8080"

	resp := do(t, c, get(t, site+"/", "alice", "wrong", "text/html"))
	wantStatus(t, resp, http.StatusUnauthorized)

	resp = do(t, c, get(t, site+"/", "alice", "alice", "text/html"))
	wantStatus(t, resp, http.StatusFound)
	loc := resp.Header.Get("Location")
	if loc != "/.mfa/?return=%2F" {
		t.Fatalf("Location = %q, want the sign-in page", loc)
	}

	resp = do(t, c, get(t, site+loc, "alice", "alice", "text/html"))
	page := wantStatus(t, resp, http.StatusOK)
	if !strings.Contains(page, "Email me a code") || !strings.Contains(page, "a***@e***.com") {
		t.Fatalf("sign-in page does not offer a code to a***@e***.com:\n%s", page)
	}

	resp = do(t, c, postForm(t, site+"/.mfa/send", "alice", "alice", url.Values{
		"csrf_token": {csrfToken(t, page)}, "method": {"email"},
	}))
	wantStatus(t, resp, http.StatusSeeOther)

	// The outbox path is relative to Caddy's working directory.
	msg := WaitOutbox(t, filepath.Join(srv.Dir, "mailbox"), 1)
	if msg.To != "<alice@example.com>" && msg.To != "alice@example.com" {
		t.Errorf("To = %q, want alice@example.com", msg.To)
	}
	if _, err := os.Stat(filepath.Join(srv.Dir, ".mfa-data")); err != nil {
		t.Errorf("storage badger ./.mfa-data: %v", err)
	}

	resp = do(t, c, get(t, site+"/.mfa/", "alice", "alice", "text/html"))
	page = wantStatus(t, resp, http.StatusOK)
	if !strings.Contains(page, "Enter your code") {
		t.Fatalf("after sending, the page is not the verify step:\n%s", page)
	}
	resp = do(t, c, postForm(t, site+"/.mfa/verify", "alice", "alice", url.Values{
		"csrf_token": {csrfToken(t, page)}, "method": {"email"}, "code": {msg.Code},
	}))
	wantStatus(t, resp, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Fatalf("after verify, Location = %q, want the return path /", loc)
	}

	resp = do(t, c, get(t, site+"/", "alice", "alice", "text/html"))
	body := wantStatus(t, resp, http.StatusOK)
	if want := "Hello alice, you passed MFA (email)."; body != want {
		t.Fatalf("body = %q, want %q", body, want)
	}
}

// TestBranding signs in through examples/branding and checks the site's
// look: its name in the title, the header and the email, its logo served
// from /.mfa/logo, its stylesheet appended to the built-in one, all under
// the pages' CSP.
func TestBranding(t *testing.T) {
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	srv := Start(t, "branding", Options{Rewrite: func(cfg map[string]any) {
		// The Caddyfile names its files relative to its folder; the test
		// runs Caddy in a temporary directory.
		forEachMFA(cfg, func(h map[string]any) {
			for _, k := range []string{"logo", "css"} {
				h[k] = filepath.Join(here, "branding", h[k].(string))
			}
		})
	}})
	c := srv.Client()
	const site = "http://localhost:8080"

	resp := do(t, c, get(t, site+"/", "alice", "alice", "text/html"))
	wantStatus(t, resp, http.StatusFound)
	resp = do(t, c, get(t, site+resp.Header.Get("Location"), "alice", "alice", "text/html"))
	page := wantStatus(t, resp, http.StatusOK)
	for _, want := range []string{"<title>Sign in · Example Corp</title>", `<header class="brand"><img src="/.mfa/logo" alt=""><span>Example Corp</span></header>`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s:\n%s", want, page)
		}
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "http") {
		t.Errorf("CSP %q", csp)
	}
	resp = do(t, c, get(t, site+"/.mfa/logo", "alice", "alice", "image/*"))
	logo := wantStatus(t, resp, http.StatusOK)
	if resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.Contains(logo, "<svg") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("logo: %s %q", resp.Header.Get("Content-Type"), resp.Header.Get("Content-Security-Policy"))
	}
	resp = do(t, c, get(t, site+"/.mfa/style.css", "alice", "alice", "text/css"))
	if css := wantStatus(t, resp, http.StatusOK); !strings.Contains(css, "--accent: #2457d6") || !strings.Contains(css, "--accent: #0b6e4f") {
		t.Errorf("the stylesheet is not the built-in one with brand.css after it:\n%s", css)
	}

	resp = do(t, c, postForm(t, site+"/.mfa/send", "alice", "alice", url.Values{
		"csrf_token": {csrfToken(t, page)}, "method": {"email"},
	}))
	wantStatus(t, resp, http.StatusSeeOther)
	msg := WaitOutbox(t, filepath.Join(srv.Dir, "mailbox"), 1)
	if msg.Subject != "Your sign-in code for Example Corp" {
		t.Errorf("subject %q does not name the site", msg.Subject)
	}
	resp = do(t, c, get(t, site+"/.mfa/", "alice", "alice", "text/html"))
	page = wantStatus(t, resp, http.StatusOK)
	resp = do(t, c, postForm(t, site+"/.mfa/verify", "alice", "alice", url.Values{
		"csrf_token": {csrfToken(t, page)}, "method": {"email"}, "code": {msg.Code},
	}))
	wantStatus(t, resp, http.StatusSeeOther)
	resp = do(t, c, get(t, site+"/", "alice", "alice", "text/html"))
	if body := wantStatus(t, resp, http.StatusOK); body != "Hello alice, you passed MFA (email)." {
		t.Errorf("body = %q", body)
	}
}

// forEachMFA calls f with every mfa handler of an adapted config.
func forEachMFA(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == "mfa" {
			f(v)
		}
		for _, c := range v {
			forEachMFA(c, f)
		}
	case []any:
		for _, c := range v {
			forEachMFA(c, f)
		}
	}
}

// TestBasicAuthSMTP signs in through examples/basic-auth-smtp with the
// JSON API, the code sent by a real SMTP server in the test process
// (STARTTLS and AUTH on the submission port, as the example says), and
// checks what the app behind reverse_proxy receives.
func TestBasicAuthSMTP(t *testing.T) {
	const password = "smtp-password-for-the-test"
	mailer := smtptest.NewServer(t, smtptest.Options{Username: "noreply@example.com", Password: password})
	t.Setenv("SMTP_PASSWORD", password)

	type seen struct{ user, cookie string }
	requests := make(chan seen, 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests <- seen{r.Header.Get("Remote-User"), r.Header.Get("Cookie")}
		io.WriteString(w, "the app")
	}))
	t.Cleanup(app.Close)

	srv := Start(t, "basic-auth-smtp", Options{Rewrite: func(cfg map[string]any) {
		Walk(cfg, func(obj map[string]any) {
			switch {
			case obj["transport"] == "smtp":
				if obj["host"] != "smtp.example.com" || obj["port"] != 587.0 || obj["tls"] != "starttls" {
					t.Errorf("smtp transport is %v, the test expects smtp.example.com 587 with starttls", obj)
				}
				obj["host"] = mailer.Host
				obj["port"] = mailer.Port // the plain listener, with STARTTLS
				obj["ca_file"] = mailer.CAFile
			case obj["handler"] == "reverse_proxy":
				obj["upstreams"] = []any{map[string]any{"dial": app.Listener.Addr().String()}}
			}
		})
	}})
	c := srv.Client()
	const site = "http://app.example.com"

	// A script without a session gets a JSON 401, never the HTML page.
	resp := do(t, c, get(t, site+"/api", "alice", "alice", "application/json"))
	var v view
	decode(t, resp, http.StatusUnauthorized, &v)
	if v.Error != "mfa_required" || v.Redirect != "/.mfa/" {
		t.Fatalf("no session: %+v, want mfa_required", v)
	}

	resp = do(t, c, get(t, site+"/.mfa/?return=/reports", "alice", "alice", "application/json"))
	decode(t, resp, http.StatusOK, &v)
	if v.Step != "choose" || !slices.Equal(v.Methods, []string{"email"}) || v.Destination != "a***@e***.com" || v.CSRFToken == "" {
		t.Fatalf("GET /.mfa/: %+v, want the choose step", v)
	}
	csrf := v.CSRFToken

	resp = do(t, c, postJSON(t, site+"/.mfa/send", map[string]string{"method": "email", "csrf_token": csrf}))
	decode(t, resp, http.StatusOK, &v)
	if v.Step != "verify" || v.ExpiresIn != 600 || v.AttemptsLeft == nil || *v.AttemptsLeft != 3 {
		t.Fatalf("send: %+v, want the verify step with 10m and 3 attempts", v)
	}

	msgs := mailer.WaitMessages(1, 0)
	if len(msgs) != 1 {
		t.Fatalf("the SMTP server received %d messages, want 1", len(msgs))
	}
	got := msgs[0]
	if !got.TLS || got.User != "noreply@example.com" || !slices.Equal(got.To, []string{"alice@example.com"}) || got.From != "noreply@example.com" {
		t.Fatalf("SMTP transaction: TLS %v, user %q, from %q, to %q; want STARTTLS, AUTH as noreply@example.com, one recipient",
			got.TLS, got.User, got.From, got.To)
	}
	msg, err := ParseMessage(got.Data)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg.Subject, "app.example.com") {
		t.Errorf("subject %q does not name the site of base_url", msg.Subject)
	}

	wrong := "000000"
	if msg.Code == wrong {
		wrong = "111111"
	}
	resp = do(t, c, postJSON(t, site+"/.mfa/verify", map[string]string{"method": "email", "code": wrong, "csrf_token": csrf}))
	decode(t, resp, http.StatusUnauthorized, &v)
	if v.Error != "invalid_code" || v.AttemptsLeft == nil || *v.AttemptsLeft != 2 {
		t.Fatalf("wrong code: %+v, want invalid_code with 2 attempts left", v)
	}

	resp = do(t, c, postJSON(t, site+"/.mfa/verify", map[string]string{"method": "email", "code": msg.Code, "csrf_token": csrf}))
	decode(t, resp, http.StatusOK, &v)
	if v.Step != "done" || v.User != "alice" || v.Method != "email" || v.Redirect != "/reports" {
		t.Fatalf("verify: %+v, want done for alice, back to /reports", v)
	}

	req := get(t, site+"/reports", "alice", "alice", "text/html")
	req.Header.Set("Remote-User", "admin") // replaced by header_up, never passed on
	resp = do(t, c, req)
	if body := wantStatus(t, resp, http.StatusOK); body != "the app" {
		t.Fatalf("body = %q, want the app's", body)
	}
	up := <-requests
	if up.user != "alice" {
		t.Errorf("the app saw Remote-User %q, want alice", up.user)
	}
	if strings.Contains(up.cookie, "mfa_") {
		t.Errorf("the app saw the MFA cookies: %q", up.cookie)
	}
}

// TestStandalone signs in through examples/standalone: no first factor,
// the page asks who you are, and the code goes to the address on file.
func TestStandalone(t *testing.T) {
	srv := Start(t, "standalone", Options{})
	c := srv.Client()
	const site = "http://localhost:8080"
	mailbox := filepath.Join(srv.Dir, "mailbox")

	resp := do(t, c, get(t, site+"/", "", "", "text/html"))
	wantStatus(t, resp, http.StatusFound)
	resp = do(t, c, get(t, site+resp.Header.Get("Location"), "", "", "text/html"))
	page := wantStatus(t, resp, http.StatusOK)
	if !strings.Contains(page, `name="username"`) {
		t.Fatalf("the sign-in page does not ask who you are:\n%s", page)
	}

	// An address outside allow_emails gets the same answer, and no mail.
	identify := func(name string) string {
		t.Helper()
		resp := do(t, c, get(t, site+"/.mfa/", "", "", "text/html"))
		page := wantStatus(t, resp, http.StatusOK)
		resp = do(t, c, postForm(t, site+"/.mfa/identify", "", "", url.Values{
			"csrf_token": {csrfToken(t, page)}, "username": {name},
		}))
		wantStatus(t, resp, http.StatusSeeOther)
		resp = do(t, c, get(t, site+resp.Header.Get("Location"), "", "", "text/html"))
		return wantStatus(t, resp, http.StatusOK)
	}
	strangerPage := identify("eve@elsewhere.test")

	page = identify("Bob@Example.com")
	if !strings.Contains(page, "Enter your code") {
		t.Fatalf("after identify, the page is not the verify step:\n%s", page)
	}
	if mask := regexp.MustCompile(`<strong>[^<]*</strong>|value="[^"]*"`); mask.ReplaceAllString(page, "") != mask.ReplaceAllString(strangerPage, "") {
		t.Errorf("the pages for a known and an unknown address differ beyond the echoed address:\n%s\n----\n%s", page, strangerPage)
	}
	msg := WaitOutbox(t, mailbox, 1)
	if !strings.Contains(msg.To, "bob@example.com") {
		t.Fatalf("To = %q, want bob@example.com", msg.To)
	}

	resp = do(t, c, postForm(t, site+"/.mfa/verify", "", "", url.Values{
		"csrf_token": {csrfToken(t, page)}, "method": {"email"}, "code": {msg.Code},
	}))
	wantStatus(t, resp, http.StatusSeeOther)
	resp = do(t, c, get(t, site+resp.Header.Get("Location"), "", "", "text/html"))
	if body, want := wantStatus(t, resp, http.StatusOK), "Hello bob@example.com, you passed MFA (email)."; body != want {
		t.Fatalf("body = %q, want %q", body, want)
	}

	if names, _ := Outbox(mailbox); len(names) != 1 {
		t.Errorf("the outbox holds %d messages, want only bob's", len(names))
	}
}

// TestTOTP follows examples/totp/README.md as a browser: alice signs in
// with the code from the outbox, is sent to the setup page, adds the app
// (the key typed from the page, the code computed as an app would),
// receives her recovery codes, signs out, and signs in with the app.
func TestTOTP(t *testing.T) {
	srv := Start(t, "totp", Options{})
	c := srv.Client()
	const site = "http://localhost:8080"
	page := func(path, user string) string {
		t.Helper()
		return wantStatus(t, do(t, c, get(t, site+path, user, user, "text/html")), http.StatusOK)
	}
	post := func(path, user string, form url.Values) *http.Response {
		t.Helper()
		return do(t, c, postForm(t, site+path, user, user, form))
	}

	// 1-2. Basic auth, then the sign-in page offers only the emailed code.
	resp := do(t, c, get(t, site+"/", "alice", "alice", "text/html"))
	wantStatus(t, resp, http.StatusFound)
	p := page(resp.Header.Get("Location"), "alice")
	if !strings.Contains(p, "Email me a code") || !strings.Contains(p, "a***@e***.com") || strings.Contains(p, "authenticator app") {
		t.Fatalf("the first sign-in page should offer only a code to a***@e***.com:\n%s", p)
	}
	resp = post("/.mfa/send", "alice", url.Values{"csrf_token": {csrfToken(t, p)}, "method": {"email"}})
	wantStatus(t, resp, http.StatusSeeOther)
	msg := WaitOutbox(t, filepath.Join(srv.Dir, "mailbox"), 1)

	// 3. The code leads to the setup page, not to the site.
	p = page("/.mfa/", "alice")
	resp = post("/.mfa/verify", "alice", url.Values{"csrf_token": {csrfToken(t, p)}, "method": {"email"}, "code": {msg.Code}})
	wantStatus(t, resp, http.StatusSeeOther)
	setup := resp.Header.Get("Location")
	if setup != "/.mfa/enroll/totp?return=%2F" {
		t.Fatalf("after the emailed code, Location = %q, want the setup page", setup)
	}
	p = page(setup, "alice")
	if !strings.Contains(p, "Set up your authenticator app") || !strings.Contains(p, `src="data:image/png;base64,`) {
		t.Fatalf("the setup page shows no QR code:\n%s", p)
	}
	m := secretPattern.FindStringSubmatch(p)
	if m == nil {
		t.Fatalf("no key on the setup page:\n%s", p)
	}
	secret := m[1]
	if !strings.Contains(p, "otpauth://totp/Example:alice?secret="+strings.ReplaceAll(secret, " ", "")+"&amp;issuer=Example") {
		t.Errorf("the setup page does not link the app to Example:alice with its key:\n%s", p)
	}

	// 4-5. The app's code confirms it; ten recovery codes are shown once.
	now := time.Now()
	resp = post("/.mfa/enroll/totp", "alice", url.Values{
		"csrf_token": {csrfToken(t, p)}, "action": {"confirm"}, "return": {"/"}, "code": {totpref.Code(secret, now, 0)},
	})
	p = wantStatus(t, resp, http.StatusOK)
	codes := recoveryPattern.FindAllStringSubmatch(p, -1)
	if !strings.Contains(p, "Save your recovery codes") || len(codes) != 10 {
		t.Fatalf("after confirming, %d recovery codes, want 10:\n%s", len(codes), p)
	}
	if body := page("/", "alice"); body != "Hello alice, you passed MFA (email)." {
		t.Fatalf("body = %q", body)
	}

	// 6. Sign out.
	p = page("/.mfa/", "alice")
	resp = post("/.mfa/logout", "alice", url.Values{"csrf_token": {csrfToken(t, p)}})
	wantStatus(t, resp, http.StatusSeeOther)
	resp = do(t, c, get(t, site+"/", "alice", "alice", "text/html"))
	wantStatus(t, resp, http.StatusFound)

	// 7. The app is offered first; its next code signs alice in.
	p = page(resp.Header.Get("Location"), "alice")
	app, mail, recovery := strings.Index(p, "Use my authenticator app"), strings.Index(p, "Email me a code"), strings.Index(p, "Use a recovery code")
	if app < 0 || mail < app || recovery < mail {
		t.Fatalf("the sign-in page should offer the app, then email, then a recovery code:\n%s", p)
	}
	p = page("/.mfa/?method=totp", "alice")
	if !strings.Contains(p, "Enter the code from your app") {
		t.Fatalf("GET /.mfa/?method=totp is not the app's code form:\n%s", p)
	}
	resp = post("/.mfa/verify", "alice", url.Values{"csrf_token": {csrfToken(t, p)}, "method": {"totp"}, "code": {totpref.Code(secret, now, 1)}})
	wantStatus(t, resp, http.StatusSeeOther)
	if loc := resp.Header.Get("Location"); loc != "/" {
		t.Fatalf("after the app's code, Location = %q, want /", loc)
	}
	if body := page("/", "alice"); body != "Hello alice, you passed MFA (totp)." {
		t.Fatalf("body = %q", body)
	}

	// Bob, in another browser, has an app only once he adds one himself.
	c = srv.Client()
	resp = do(t, c, get(t, site+"/", "bob", "bob", "text/html"))
	wantStatus(t, resp, http.StatusFound)
	if p := page(resp.Header.Get("Location"), "bob"); !strings.Contains(p, "b***@e***.com") || strings.Contains(p, "authenticator app") {
		t.Fatalf("bob's sign-in page should offer only a code to b***@e***.com:\n%s", p)
	}
}

var (
	secretPattern   = regexp.MustCompile(`<code class="secret">([A-Z2-7 ]+)</code>`)
	recoveryPattern = regexp.MustCompile(`<li><code>([a-z2-7]{4}(?:-[a-z2-7]{4}){3})</code></li>`)
)

// view is the JSON answer of the flow endpoints.
// TestRedis runs examples/redis on a Redis started with the example's
// redis.conf (AOF, noeviction, a least-privilege user for Caddy whose
// password comes from REDIS_PASSWORD). Alice signs in on one
// node; the example started again in a fresh directory, as another node
// with nothing of its own, lets her session through. With Redis stopped
// the site fails closed with 503, and it serves again by itself once Redis
// is back.
func TestRedis(t *testing.T) {
	conf, err := os.ReadFile(filepath.Join("redis", "redis.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(conf), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	rds := redistest.Start(t, lines...)
	t.Setenv("REDIS_PASSWORD", "change-me")
	opts := Options{Rewrite: func(cfg map[string]any) {
		Walk(cfg, func(obj map[string]any) {
			if obj["backend"] == "redis" {
				if obj["url"] != "redis://127.0.0.1:6379" || obj["username"] != "caddy" {
					t.Errorf("redis store is %v, the test expects redis://127.0.0.1:6379 as caddy", obj)
				}
				obj["url"] = "redis://" + rds.Addr
			}
		})
	}}
	const site = "http://localhost:8080"
	node1 := Start(t, "redis", opts)
	c := node1.Client()

	resp := do(t, c, get(t, site+"/.mfa/", "alice", "alice", "application/json"))
	var v view
	decode(t, resp, http.StatusOK, &v)
	resp = do(t, c, postJSON(t, site+"/.mfa/send", map[string]string{"method": "email", "csrf_token": v.CSRFToken}))
	decode(t, resp, http.StatusOK, &v)
	msg := WaitOutbox(t, filepath.Join(node1.Dir, "mailbox"), 1)
	resp = do(t, c, postJSON(t, site+"/.mfa/verify", map[string]string{"method": "email", "code": msg.Code, "csrf_token": v.CSRFToken}))
	decode(t, resp, http.StatusOK, &v)
	if v.Step != "done" {
		t.Fatalf("verify: %+v, want done", v)
	}

	// Another node: the same Caddyfile in a fresh directory, with the
	// browser's cookies.
	opts.Port = node1.Port
	node2 := Start(t, "redis", opts)
	c2 := node2.Client()
	u, _ := url.Parse(site)
	c2.Jar.SetCookies(u, c.Jar.Cookies(u))
	hello := "Hello alice, you passed MFA (email)."
	resp = do(t, c2, get(t, site+"/", "alice", "alice", "application/json"))
	if body := wantStatus(t, resp, http.StatusOK); body != hello {
		t.Fatalf("the session on another node: %q, want %q", body, hello)
	}

	// Redis down: past the one-second cache, nothing gets through.
	rds.Stop()
	time.Sleep(1100 * time.Millisecond)
	resp = do(t, c2, get(t, site+"/", "alice", "alice", "application/json"))
	decode(t, resp, http.StatusServiceUnavailable, &v)
	if v.Error != "unavailable" {
		t.Fatalf("Redis down: %+v, want the error unavailable", v)
	}
	rds.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp = do(t, c2, get(t, site+"/", "alice", "alice", "application/json"))
		if resp.StatusCode == http.StatusOK {
			wantStatus(t, resp, http.StatusOK)
			break
		}
		if time.Now().After(deadline) {
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("10 s after Redis came back the site answers %d: %s\n%s", resp.StatusCode, b, rds.Log())
		}
		resp.Body.Close()
		time.Sleep(50 * time.Millisecond)
	}
}

type view struct {
	Step         string   `json:"step"`
	Methods      []string `json:"methods"`
	Method       string   `json:"method"`
	Destination  string   `json:"destination"`
	ExpiresIn    int      `json:"expires_in"`
	AttemptsLeft *int     `json:"attempts_left"`
	CSRFToken    string   `json:"csrf_token"`
	Redirect     string   `json:"redirect"`
	User         string   `json:"user"`
	Error        string   `json:"error"`
	Message      string   `json:"message"`
	// Destinations are the masked addresses by method.
	Destinations map[string]string `json:"destinations"`
}

// TestRemember follows examples/remember: the first sign-in from an
// address asks for the code and remembers the device; a fresh browser
// from that address is let in (known_ip); from a new address the code is
// asked again, except in the remembered browser (remembered_device).
// The test makes Caddy trust X-Forwarded-For from 127.0.0.1 so that it
// can come from several addresses.
func TestRemember(t *testing.T) {
	srv := Start(t, "remember", Options{Rewrite: func(cfg map[string]any) {
		Walk(cfg, func(obj map[string]any) {
			if _, ok := obj["listen"]; ok {
				obj["trusted_proxies"] = map[string]any{"source": "static", "ranges": []any{"127.0.0.1/32"}}
			}
		})
	}})
	const site = "http://localhost:8080"
	from := func(req *http.Request, ip string) *http.Request {
		req.Header.Set("X-Forwarded-For", ip)
		return req
	}
	hello := func(c *http.Client, ip string) string {
		t.Helper()
		resp := do(t, c, from(get(t, site+"/", "alice", "alice", "text/html"), ip))
		if resp.StatusCode == http.StatusFound {
			resp.Body.Close()
			return "challenged"
		}
		return wantStatus(t, resp, http.StatusOK)
	}

	first := srv.Client()
	if got := hello(first, "198.51.100.7"); got != "challenged" {
		t.Fatalf("first visit: %q, want the challenge", got)
	}
	page := wantStatus(t, do(t, first, from(get(t, site+"/.mfa/", "alice", "alice", "text/html"), "198.51.100.7")), http.StatusOK)
	wantStatus(t, do(t, first, from(postForm(t, site+"/.mfa/send", "alice", "alice", url.Values{
		"csrf_token": {csrfToken(t, page)}, "method": {"email"},
	}), "198.51.100.7")), http.StatusSeeOther)
	msg := WaitOutbox(t, filepath.Join(srv.Dir, "mailbox"), 1)
	page = wantStatus(t, do(t, first, from(get(t, site+"/.mfa/", "alice", "alice", "text/html"), "198.51.100.7")), http.StatusOK)
	if !strings.Contains(page, "Remember this device for 30 days") {
		t.Fatalf("the code form does not offer to remember the device:\n%s", page)
	}
	wantStatus(t, do(t, first, from(postForm(t, site+"/.mfa/verify", "alice", "alice", url.Values{
		"csrf_token": {csrfToken(t, page)}, "method": {"email"}, "code": {msg.Code}, "remember": {"1"},
	}), "198.51.100.7")), http.StatusSeeOther)
	if got := hello(first, "198.51.100.7"); got != "Hello alice, you passed MFA (email)." {
		t.Fatalf("after the code: %q", got)
	}

	if got := hello(srv.Client(), "198.51.100.7"); got != "Hello alice, you passed MFA (known_ip)." {
		t.Errorf("a fresh browser from a known address: %q", got)
	}
	if got := hello(srv.Client(), "203.0.113.9"); got != "challenged" {
		t.Errorf("a fresh browser from a new address: %q, want the challenge", got)
	}

	// The remembered browser, its session cookie gone, from a new address.
	remembered := srv.Client()
	u, _ := url.Parse(site + "/")
	for _, c := range first.Jar.Cookies(u) {
		if strings.HasPrefix(c.Name, "mfa_device-") {
			remembered.Jar.SetCookies(u, []*http.Cookie{c})
		}
	}
	if got := hello(remembered, "203.0.113.9"); got != "Hello alice, you passed MFA (remembered_device)." {
		t.Errorf("the remembered browser from a new address: %q", got)
	}
}

// TestSMSOutbox follows examples/sms-outbox/README.md as a browser: alice
// asks for a code by text, reads it from the .txt file in ./sms-outbox,
// and is offered an authenticator app; she adds it, signs out, and signs
// in with the app, which is now offered first. Bob's browser asks for
// Swedish and gets the Swedish text at his Swedish number.
func TestSMSOutbox(t *testing.T) {
	srv := Start(t, "sms-outbox", Options{})
	c := srv.Client()
	const site = "http://localhost:8080"
	outbox := filepath.Join(srv.Dir, "sms-outbox")
	page := func(path, user string) string {
		t.Helper()
		return wantStatus(t, do(t, c, get(t, site+path, user, user, "text/html")), http.StatusOK)
	}
	post := func(path, user string, form url.Values) *http.Response {
		t.Helper()
		return do(t, c, postForm(t, site+path, user, user, form))
	}
	// says reports whether a page shows text, once its entities are
	// decoded (the template writes + as &#43;).
	says := func(page, text string) bool { return strings.Contains(html.UnescapeString(page), text) }

	// 1-2. Basic auth, then a code by text to the number on file.
	resp := do(t, c, get(t, site+"/", "alice", "alice", "text/html"))
	wantStatus(t, resp, http.StatusFound)
	p := page(resp.Header.Get("Location"), "alice")
	if !says(p, "Text me a code") || !says(p, "by text message to <strong>+1*******23</strong>") || says(p, "authenticator app") {
		t.Fatalf("the first sign-in page should offer only a text to +1*******23:\n%s", p)
	}
	resp = post("/.mfa/send", "alice", url.Values{"csrf_token": {csrfToken(t, p)}, "method": {"sms"}})
	wantStatus(t, resp, http.StatusSeeOther)

	// 3. The text is a file in ./sms-outbox.
	text := WaitText(t, outbox, 1)
	if text.To != "+12015550123" || text.Body != "Your Example sign-in code is "+text.Code {
		t.Fatalf("text to %s: %q", text.To, text.Body)
	}
	p = page("/.mfa/", "alice")
	if !says(p, "We sent a code by text message to <strong>+1*******23</strong>") {
		t.Fatalf("after sending, the page does not say where the code went:\n%s", p)
	}

	// 4. The code signs alice in and offers the app.
	resp = post("/.mfa/verify", "alice", url.Values{"csrf_token": {csrfToken(t, p)}, "method": {"sms"}, "code": {text.Code}})
	wantStatus(t, resp, http.StatusSeeOther)
	setup := resp.Header.Get("Location")
	if setup != "/.mfa/enroll/totp?return=%2F" {
		t.Fatalf("after the texted code, Location = %q, want the setup page", setup)
	}
	if body := page("/", "alice"); body != "Hello alice, you passed MFA (sms)." {
		t.Fatalf("body = %q", body)
	}

	// 5. The app.
	p = page(setup, "alice")
	m := secretPattern.FindStringSubmatch(p)
	if m == nil {
		t.Fatalf("no key on the setup page:\n%s", p)
	}
	now := time.Now()
	resp = post("/.mfa/enroll/totp", "alice", url.Values{
		"csrf_token": {csrfToken(t, p)}, "action": {"confirm"}, "return": {"/"}, "code": {totpref.Code(m[1], now, 0)},
	})
	if p := wantStatus(t, resp, http.StatusOK); !strings.Contains(p, "Save your recovery codes") {
		t.Fatalf("after confirming the app:\n%s", p)
	}
	notice := WaitText(t, outbox, 2)
	if notice.To != "+12015550123" || notice.Code != "" || !strings.HasPrefix(notice.Body, "Security notice: an authenticator app was added to your account on localhost.") {
		t.Errorf("after adding the app, text to %s: %q, want the security notice", notice.To, notice.Body)
	}

	// 6. Sign out, and in again: the app first, the text still offered.
	p = page("/.mfa/", "alice")
	wantStatus(t, post("/.mfa/logout", "alice", url.Values{"csrf_token": {csrfToken(t, p)}}), http.StatusSeeOther)
	resp = do(t, c, get(t, site+"/", "alice", "alice", "text/html"))
	wantStatus(t, resp, http.StatusFound)
	p = page(resp.Header.Get("Location"), "alice")
	p = html.UnescapeString(p)
	app, sms := strings.Index(p, "Use my authenticator app"), strings.Index(p, "Text me a code at +1*******23")
	if app < 0 || sms < app {
		t.Fatalf("the sign-in page should offer the app, then the text:\n%s", p)
	}
	p = page("/.mfa/?method=totp", "alice")
	resp = post("/.mfa/verify", "alice", url.Values{"csrf_token": {csrfToken(t, p)}, "method": {"totp"}, "code": {totpref.Code(m[1], now, 1)}})
	wantStatus(t, resp, http.StatusSeeOther)
	if body := page("/", "alice"); body != "Hello alice, you passed MFA (totp)." {
		t.Fatalf("body = %q", body)
	}

	// Bob, in another browser that prefers Swedish.
	c = srv.Client()
	resp = do(t, c, get(t, site+"/", "bob", "bob", "text/html"))
	wantStatus(t, resp, http.StatusFound)
	p = page(resp.Header.Get("Location"), "bob")
	if !says(p, "Text me a code") || !says(p, "by text message to <strong>+4*******67</strong>") {
		t.Fatalf("bob's sign-in page should offer a text to +4*******67:\n%s", p)
	}
	req := postForm(t, site+"/.mfa/send", "bob", "bob", url.Values{"csrf_token": {csrfToken(t, p)}, "method": {"sms"}})
	req.Header.Set("Accept-Language", "sv-SE,sv;q=0.9,en;q=0.5")
	wantStatus(t, do(t, c, req), http.StatusSeeOther)
	text = WaitText(t, outbox, 3)
	if text.To != "+46701234567" || text.Body != "Din inloggningskod för Example är "+text.Code {
		t.Fatalf("bob's text to %s: %q", text.To, text.Body)
	}
}

// TestSMSTwilio signs in through examples/sms-twilio with the JSON API:
// the Twilio provider, its credentials read from the environment, posts
// to a local server that speaks Twilio's Messages API (api_url rewritten
// to it), and the app behind reverse_proxy learns who signed in.
func TestSMSTwilio(t *testing.T) {
	tw := twiliotest.NewServer(t)
	t.Setenv("TWILIO_ACCOUNT_SID", twiliotest.AccountSID)
	t.Setenv("TWILIO_AUTH_TOKEN", twiliotest.AuthToken)

	requests := make(chan string, 10)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests <- r.Header.Get("Remote-User")
		io.WriteString(w, "the app")
	}))
	t.Cleanup(app.Close)

	srv := Start(t, "sms-twilio", Options{Rewrite: func(cfg map[string]any) {
		Walk(cfg, func(obj map[string]any) {
			switch {
			case obj["provider"] == "twilio":
				if obj["account_sid"] != "{env.TWILIO_ACCOUNT_SID}" || obj["auth_token"] != "{env.TWILIO_AUTH_TOKEN}" || obj["api_url"] != nil {
					t.Errorf("twilio provider is %v, the test expects the credentials from the environment and Twilio's own API", obj)
				}
				obj["api_url"] = tw.URL
			case obj["handler"] == "reverse_proxy":
				obj["upstreams"] = []any{map[string]any{"dial": app.Listener.Addr().String()}}
			}
		})
	}})
	c := srv.Client()
	const site = "http://app.example.com"

	var v view
	decode(t, do(t, c, get(t, site+"/.mfa/?return=/reports", "alice", "alice", "application/json")), http.StatusOK, &v)
	if v.Step != "choose" || !slices.Equal(v.Methods, []string{"sms"}) || v.Destinations["sms"] != "+1*******23" || v.CSRFToken == "" {
		t.Fatalf("GET /.mfa/: %+v, want the choose step with a text to +1*******23", v)
	}
	csrf := v.CSRFToken

	decode(t, do(t, c, postJSON(t, site+"/.mfa/send", map[string]string{"method": "sms", "csrf_token": csrf})), http.StatusOK, &v)
	if v.Step != "verify" || v.Method != "sms" || v.ExpiresIn != 60 || v.AttemptsLeft == nil || *v.AttemptsLeft != 3 {
		t.Fatalf("send: %+v, want the verify step with 1m and 3 attempts", v)
	}
	msgs := tw.Messages()
	if len(msgs) != 1 || tw.Requests() != 1 {
		t.Fatalf("the Twilio server got %d requests and accepted %d texts, want 1 and 1", tw.Requests(), len(msgs))
	}
	m := textCode.FindStringSubmatch(msgs[0].Body)
	if msgs[0].To != "+12015550123" || msgs[0].From != "+12015550100" || m == nil || msgs[0].Body != "Your app.example.com code is "+m[1] {
		t.Fatalf("text %+v, want the code to +12015550123 from +12015550100", msgs[0])
	}

	decode(t, do(t, c, postJSON(t, site+"/.mfa/verify", map[string]string{"method": "sms", "code": m[1], "csrf_token": csrf})), http.StatusOK, &v)
	if v.Step != "done" || v.User != "alice" || v.Method != "sms" || v.Redirect != "/.mfa/enroll/totp?return=%2Freports" {
		t.Fatalf("verify: %+v, want done for alice, on to the authenticator app's page", v)
	}

	resp := do(t, c, get(t, site+"/reports", "alice", "alice", "text/html"))
	if body := wantStatus(t, resp, http.StatusOK); body != "the app" {
		t.Fatalf("body = %q, want the app's", body)
	}
	if user := <-requests; user != "alice" {
		t.Errorf("the app saw Remote-User %q, want alice", user)
	}
}

func get(t *testing.T, target, user, password, accept string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	req.Header.Set("Accept", accept)
	return req
}

func postForm(t *testing.T, target, user, password string, form url.Values) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	return req
}

// postJSON posts as alice/alice, the user of basic-auth-smtp.
func postJSON(t *testing.T, target string, body any) *http.Request {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, target, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("alice", "alice")
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return req
}

func do(t *testing.T, c *http.Client, req *http.Request) *http.Response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return resp
}

// wantStatus checks the status and returns the body.
func wantStatus(t *testing.T, resp *http.Response, status int) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d; body:\n%s", resp.Request.Method, resp.Request.URL, resp.StatusCode, status, b)
	}
	return string(b)
}

func decode(t *testing.T, resp *http.Response, status int, v *view) {
	t.Helper()
	body := wantStatus(t, resp, status)
	*v = view{}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("decoding %q: %v", body, err)
	}
}

var csrfPattern = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

func csrfToken(t *testing.T, page string) string {
	t.Helper()
	m := csrfPattern.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// TestValidateWritesNothing validates every example as 'caddy validate'
// does, in a copy of its folder: no store, outbox or other file appears
// there or in Caddy's data directory.
func TestValidateWritesNothing(t *testing.T) {
	t.Setenv("SMTP_PASSWORD", "secret")
	t.Setenv("REDIS_PASSWORD", "change-me")
	t.Setenv("TWILIO_ACCOUNT_SID", twiliotest.AccountSID)
	t.Setenv("TWILIO_AUTH_TOKEN", twiliotest.AuthToken)
	here, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			cfg, _, err := Adapt(name)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			var config caddy.Config
			if err := json.Unmarshal(raw, &config); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := os.CopyFS(dir, os.DirFS(filepath.Join(here, name))); err != nil {
				t.Fatal(err)
			}
			t.Chdir(dir)
			t.Setenv("HOME", dir)
			t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "xdg-data"))
			t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg-config"))
			before := listDir(t, dir)
			if err := caddy.Validate(&config); err != nil {
				t.Fatalf("validate: %v", err)
			}
			if after := listDir(t, dir); !slices.Equal(after, before) {
				t.Errorf("validate changed the folder from %q to %q", before, after)
			}
		})
	}
}

// listDir lists the names in dir.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}
