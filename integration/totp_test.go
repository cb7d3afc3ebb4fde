package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"image/png"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// totpView is the JSON answer of the flow and enrollment endpoints, as far
// as the TOTP tests read it.
type totpView struct {
	Step          string   `json:"step"`
	Methods       []string `json:"methods"`
	Method        string   `json:"method"`
	Enroll        string   `json:"enroll"`
	CSRFToken     string   `json:"csrf_token"`
	Redirect      string   `json:"redirect"`
	Error         string   `json:"error"`
	QRCode        string   `json:"qr_png"`
	Secret        string   `json:"secret"`
	OTPAuthURI    string   `json:"otpauth_uri"`
	NeedsCurrent  bool     `json:"needs_current_code"`
	RecoveryCodes []string `json:"recovery_codes"`
	RecoveryLeft  *int     `json:"recovery_codes_left"`
}

// view decodes a JSON answer, checking its status first.
func (r *response) view(t *testing.T, status int) totpView {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", r.Request.Method, r.Request.URL, r.StatusCode, status, r.body)
	}
	var v totpView
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%s %s: decoding JSON: %v: %s", r.Request.Method, r.Request.URL, err, r.body)
	}
	return v
}

// totpSite is a second-factor site for alice with email and TOTP; mfa
// holds the lines that differ between tests (storage, users, totp block).
// It answers on every host name, so a request with a spoofed Host still
// reaches the handler, and it trusts X-Forwarded-* from the test process,
// so a spoofed X-Forwarded-Host is one Caddy believes.
func totpSite(t *testing.T, srv *smtptest.Server, up *upstream, mfa string) string {
	t.Helper()
	return site{
		global: `servers {
		trusted_proxies static 127.0.0.1/8 ::1
	}`,
		address:   "http://:9080",
		basicAuth: bcryptHash(t, alicePassword),
		upstream:  up.addr(),
		mfa: mfa + `
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
		}`,
	}.caddyfile()
}

// enrollPage GETs an enrollment page as JSON, with extra request headers.
func enrollPage(t *testing.T, c *client, path string, extra http.Header) *response {
	t.Helper()
	req := c.newRequest(http.MethodGet, path, nil)
	req.Header.Set("Accept", "application/json")
	for k, vs := range extra {
		req.Header[k] = vs
	}
	return c.do(req)
}

// forwardedHost are the headers of a client that claims, through a proxy
// Caddy trusts, to have asked for another host.
var forwardedHost = http.Header{
	"X-Forwarded-Host":   {"evil.example"},
	"X-Forwarded-Server": {"evil.example"},
}

// spoofHost makes every request of c name host in Host and in
// X-Forwarded-Host, as a browser that reached the site under another name
// would (sessions are bound to the host they were made on, so the whole
// sign-in runs under that name).
func spoofHost(c *client, host string) *client {
	c.hc.Transport = hostTransport(host)
	c.header.Set("X-Forwarded-Host", host)
	return c
}

// hostTransport sends every request with its Host header, whatever the
// URL says.
type hostTransport string

func (h hostTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Host = string(h)
	return http.DefaultTransport.RoundTrip(r)
}

// withSecret replaces the secret in an otpauth URI, so that URIs of two
// enrollments can be compared.
func withSecret(uri, secret, with string) string {
	return strings.Replace(uri, "secret="+strings.ReplaceAll(secret, " ", ""), "secret="+strings.ReplaceAll(with, " ", ""), 1)
}

// scan reads an enrollment page as an authenticator app would: it
// decodes the QR code, checks it carries otpauth_uri, checks the URI's
// label, issuer and secret, and returns the secret. The page must not be
// cached.
func scan(t *testing.T, r *response, issuer, account string) string {
	t.Helper()
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("enrollment page: Cache-Control %q, want no-store", cc)
	}
	v := r.view(t, http.StatusOK)
	if v.Step != "enroll_totp" || v.NeedsCurrent {
		t.Fatalf("enrollment page: step %q, needs_current_code %v: %s", v.Step, v.NeedsCurrent, r.body)
	}
	if got := decodeQR(t, v.QRCode); got != v.OTPAuthURI {
		t.Fatalf("the QR code holds\n%s\nthe page says\n%s", got, v.OTPAuthURI)
	}

	u, err := url.Parse(v.OTPAuthURI)
	if err != nil {
		t.Fatalf("otpauth URI %q: %v", v.OTPAuthURI, err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Fragment != "" {
		t.Fatalf("otpauth URI %q: scheme %q, type %q, fragment %q", v.OTPAuthURI, u.Scheme, u.Host, u.Fragment)
	}
	if label, want := strings.TrimPrefix(u.Path, "/"), issuer+":"+account; label != want {
		t.Errorf("otpauth URI %q: label %q, want %q", v.OTPAuthURI, label, want)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		t.Fatalf("otpauth URI %q: %v", v.OTPAuthURI, err)
	}
	want := url.Values{
		"secret":    {strings.ReplaceAll(v.Secret, " ", "")},
		"issuer":    {issuer},
		"algorithm": {"SHA1"},
		"digits":    {"6"},
		"period":    {"30"},
	}
	for k, vs := range want {
		if !slices.Equal(q[k], vs) {
			t.Errorf("otpauth URI %q: %s = %q, want %q", v.OTPAuthURI, k, q[k], vs)
		}
	}
	key, err := totpref.Key(v.Secret)
	if err != nil {
		t.Fatalf("secret %q: %v", v.Secret, err)
	}
	if len(key) < 20 {
		t.Errorf("secret of %d bits, want at least 160", 8*len(key))
	}
	return v.Secret
}

// decodeQR decodes the QR code of a PNG data URI.
func decodeQR(t *testing.T, dataURI string) string {
	t.Helper()
	b64, ok := strings.CutPrefix(dataURI, "data:image/png;base64,")
	if !ok {
		t.Fatalf("qr_png %.40q is not a PNG data URI", dataURI)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatalf("qr_png: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("qr_png: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
	if err != nil {
		t.Fatalf("decoding the QR code: %v", err)
	}
	return res.GetText()
}

// enrollCSRF is the CSRF token of an enrollment page.
func enrollCSRF(t *testing.T, c *client) string {
	t.Helper()
	v := enrollPage(t, c, "/.mfa/enroll/totp", nil).view(t, http.StatusOK)
	if v.CSRFToken == "" {
		t.Fatal("the enrollment page has no CSRF token")
	}
	return v.CSRFToken
}

var recoveryCodePattern = regexp.MustCompile(`^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$`)

// confirmEnroll confirms the app with code and returns the recovery codes,
// checking there are 10 distinct ones in the documented form.
func confirmEnroll(t *testing.T, c *client, csrf, code, ret, wantRedirect string) []string {
	t.Helper()
	r := c.postJSON("/.mfa/enroll/totp", map[string]string{
		"action": "confirm", "code": code, "return": ret, "csrf_token": csrf,
	})
	if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("recovery codes answer: Cache-Control %q, want no-store", cc)
	}
	v := r.view(t, http.StatusOK)
	if v.Step != "recovery_codes" || v.Redirect != wantRedirect {
		t.Fatalf("confirm: step %q, redirect %q, want recovery_codes and %q: %s", v.Step, v.Redirect, wantRedirect, r.body)
	}
	if len(v.RecoveryCodes) != 10 {
		t.Fatalf("confirm: %d recovery codes, want 10", len(v.RecoveryCodes))
	}
	for _, rc := range v.RecoveryCodes {
		if !recoveryCodePattern.MatchString(rc) {
			t.Errorf("recovery code %q is not of the form abcd-efgh-ijkl-mnop", rc)
		}
	}
	if s := slices.Compact(slices.Sorted(slices.Values(v.RecoveryCodes))); len(s) != len(v.RecoveryCodes) {
		t.Errorf("recovery codes repeat: %q", v.RecoveryCodes)
	}
	return v.RecoveryCodes
}

// verifyWith posts a code for method (JSON) from a fresh flow.
func verifyWith(t *testing.T, c *client, method, code string) *response {
	t.Helper()
	return c.postJSON("/.mfa/verify", map[string]string{"method": method, "code": code})
}

// signInWith signs a new browser in with method and code and checks the
// answer and the session.
func signInWith(t *testing.T, method, code, wantRedirect string) *client {
	t.Helper()
	c := newClient(t).withBasicAuth("alice", alicePassword)
	v := verifyWith(t, c, method, code).view(t, http.StatusOK)
	if v.Step != "done" || v.Redirect != wantRedirect {
		t.Fatalf("sign-in with %s: step %q, redirect %q, want done and %q", method, v.Step, v.Redirect, wantRedirect)
	}
	h, ok := protected(t, c, "/")
	if !ok || h.Get("X-Mfa-User") != "alice" || h.Get("X-Mfa-Method") != method {
		t.Fatalf("after signing in with %s: upstream reached %v, X-Mfa-User %q, X-Mfa-Method %q",
			method, ok, h.Get("X-Mfa-User"), h.Get("X-Mfa-Method"))
	}
	return c
}

// refused checks that a code for method is refused to a new browser.
func refused(t *testing.T, what, method, code string) {
	t.Helper()
	c := newClient(t).withBasicAuth("alice", alicePassword)
	r := verifyWith(t, c, method, code)
	if v := r.view(t, http.StatusUnauthorized); v.Error != "invalid_code" {
		t.Fatalf("%s: error %q, want invalid_code: %s", what, v.Error, r.body)
	}
	if _, ok := protected(t, c, "/"); ok {
		t.Fatalf("%s: the upstream was reached", what)
	}
}

// TestTOTPEnrollmentOverHTTP sets up an authenticator app through a real
// Caddy under "enroll verified": alice signs in with an emailed code, is
// sent to the enrollment page, scans the QR code, confirms with a code of
// the app and receives her recovery codes. After signing out she signs in
// with the app; the code she used cannot be used again. A spoofed Host or
// X-Forwarded-Host does not change what the app is told (SECURITY.md C20).
func TestTOTPEnrollmentOverHTTP(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, totpSite(t, srv, up, `		storage badger `+t.TempDir()+`
		secret_key `+testSecret+`
		base_url https://app.example.com
		users {
			alice email alice@example.com
		}
		totp {
			issuer "Example"
			enroll verified
		}
		recovery_codes 10`))

	c := newClient(t).withBasicAuth("alice", alicePassword)
	const target = "/private/page"

	// Without a session, the only way in is the emailed code, and no app
	// can be set up yet.
	r := c.get(target, "text/html")
	if r.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: status %d, want 302: %s", target, r.StatusCode, r.body)
	}
	r = c.get(r.Header.Get("Location"), "application/json")
	if v := r.view(t, http.StatusOK); v.Step != "choose" || !slices.Equal(v.Methods, []string{"email"}) || v.Enroll != "" {
		t.Fatalf("before sign-in: step %q, methods %q, enroll %q; want choose, [email], no enrollment", v.Step, v.Methods, v.Enroll)
	}
	if v := enrollPage(t, c, "/.mfa/enroll/totp", nil).view(t, http.StatusForbidden); v.Error != "not_allowed" || v.Secret != "" {
		t.Fatalf("enrollment without a session: error %q, secret %q, want not_allowed and no secret", v.Error, v.Secret)
	}

	// The emailed code signs alice in and sends her on to set up an app.
	code := sendCode(t, c, srv, 1)
	v := verify(t, c, code).view(t, http.StatusOK)
	wantEnroll := "/.mfa/enroll/totp?return=" + url.QueryEscape(target)
	if v.Step != "done" || v.Redirect != wantEnroll {
		t.Fatalf("verify: step %q, redirect %q, want done and %q", v.Step, v.Redirect, wantEnroll)
	}
	page := enrollPage(t, c, v.Redirect, nil)
	secret := scan(t, page, "Example", "alice")
	uri := page.view(t, http.StatusOK).OTPAuthURI

	// Neither a forwarded host Caddy trusts, nor a browser that reached
	// the site under another name (it answers every host), changes the
	// issuer or the label the app is told.
	fwd := enrollPage(t, c, v.Redirect, forwardedHost)
	if got := scan(t, fwd, "Example", "alice"); got != secret {
		t.Fatalf("reloading the page changed the secret")
	}
	if got := fwd.view(t, http.StatusOK).OTPAuthURI; got != uri {
		t.Fatalf("with X-Forwarded-Host the otpauth URI is\n%s\nwant\n%s", got, uri)
	}
	evil := spoofHost(newClient(t).withBasicAuth("alice", alicePassword), "evil.example")
	signIn(t, evil, srv, 2)
	spoofed := enrollPage(t, evil, "/.mfa/enroll/totp", nil)
	evilSecret := scan(t, spoofed, "Example", "alice")
	if got := spoofed.view(t, http.StatusOK).OTPAuthURI; withSecret(got, evilSecret, secret) != uri || strings.Contains(got, "evil") {
		t.Fatalf("with a spoofed Host the otpauth URI is\n%s\nwant, but for the secret,\n%s", got, uri)
	}

	// A wrong code does not activate the app.
	csrf := page.view(t, http.StatusOK).CSRFToken
	t0 := time.Now()
	wrong := totpref.Code(secret, t0, 5)
	r = c.postJSON("/.mfa/enroll/totp", map[string]string{"action": "confirm", "code": wrong, "return": target, "csrf_token": csrf})
	if v := r.view(t, http.StatusUnauthorized); v.Error != "invalid_code" {
		t.Fatalf("wrong first code: error %q, want invalid_code", v.Error)
	}
	if v := enrollPage(t, c, "/.mfa/enroll/totp", nil).view(t, http.StatusOK); v.Step != "enroll_totp" {
		t.Fatalf("after a wrong first code: step %q, want enroll_totp (no app yet)", v.Step)
	}

	// The code of the current step confirms it.
	enrollCode := totpref.Code(secret, t0, 0)
	codes := confirmEnroll(t, c, csrf, enrollCode, target, target)
	if h, ok := protected(t, c, target); !ok || h.Get("X-Mfa-User") != "alice" {
		t.Fatalf("after enrolling: upstream reached %v, X-Mfa-User %q", ok, h.Get("X-Mfa-User"))
	}
	v = enrollPage(t, c, "/.mfa/enroll/totp", nil).view(t, http.StatusOK)
	if v.Step != "totp_settings" || v.RecoveryLeft == nil || *v.RecoveryLeft != len(codes) || v.Secret != "" {
		t.Fatalf("after enrolling, the app page: step %q, recovery_codes_left %v, secret %q", v.Step, v.RecoveryLeft, v.Secret)
	}

	// Sign out.
	st := c.state()
	if st["step"] != "done" {
		t.Fatalf("signed in, GET /.mfa/ answers step %v", st["step"])
	}
	r = c.postJSON("/.mfa/logout", map[string]string{"csrf_token": st["csrf_token"].(string)})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("logout: status %d: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, c, target); ok {
		t.Fatal("the session survived sign-out")
	}

	// Sign in with the app: it is offered first, and the next step's
	// code (within the skew) works.
	v = c.get("/.mfa/", "application/json").view(t, http.StatusOK)
	if v.Step != "choose" || !slices.Equal(v.Methods, []string{"totp", "email", "recovery"}) || v.Method != "totp" {
		t.Fatalf("after enrolling: step %q, methods %q, method %q; want choose, [totp email recovery], totp", v.Step, v.Methods, v.Method)
	}
	if v := c.get("/.mfa/?method=totp", "application/json").view(t, http.StatusOK); v.Step != "verify" || v.Method != "totp" {
		t.Fatalf("GET /.mfa/?method=totp: step %q, method %q", v.Step, v.Method)
	}
	next := totpref.Code(secret, t0, 1)
	r = verifyWith(t, c, "totp", next)
	if v := r.view(t, http.StatusOK); v.Step != "done" || v.Redirect != "/" {
		t.Fatalf("sign-in with the app: step %q, redirect %q", v.Step, v.Redirect)
	}
	if h, ok := protected(t, c, target); !ok || h.Get("X-Mfa-Method") != "totp" {
		t.Fatalf("after signing in with the app: upstream reached %v, X-Mfa-Method %q", ok, h.Get("X-Mfa-Method"))
	}

	// Replays: the code just used, and the one that confirmed the app,
	// are refused even to another browser.
	refused(t, "the sign-in code again", "totp", next)
	if enrollCode != next {
		refused(t, "the enrollment code again", "totp", enrollCode)
	}
}

// TestTOTPSurvivesRestart enrolls alice, stops Caddy and starts it again
// on the same Badger directory, twice: the app's secret (sealed with the
// generated key), its last used step and the recovery codes survive.
func TestTOTPSurvivesRestart(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	dir := t.TempDir()
	// No secret_key: the generated one must outlive the restart, or the
	// sealed secret could not be opened.
	cfg := totpSite(t, srv, up, `		storage badger `+dir+`
		base_url https://app.example.com
		users {
			alice email alice@example.com
		}
		totp {
			issuer "Example"
		}`)
	startCaddy(t, cfg)

	c := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, c, srv, 1)
	secret := scan(t, enrollPage(t, c, "/.mfa/enroll/totp", nil), "Example", "alice")
	t0 := time.Now()
	enrollCode := totpref.Code(secret, t0, 0)
	codes := confirmEnroll(t, c, enrollCSRF(t, c), enrollCode, "", "/")

	restart(t, dir, cfg)
	if _, ok := protected(t, c, "/"); !ok {
		t.Fatal("after a restart, the session no longer works")
	}
	// The step that confirmed the app is still the last one used.
	refused(t, "after a restart, the enrollment code", "totp", enrollCode)
	next := totpref.Code(secret, t0, 1)
	signInWith(t, "totp", next, "/")
	// A recovery code signs in once, and leads to the app's page.
	signInWith(t, "recovery", codes[0], "/.mfa/enroll/totp?return=%2F")
	refused(t, "a used recovery code", "recovery", codes[0])

	restart(t, dir, cfg)
	refused(t, "after a second restart, the last app code", "totp", next)
	refused(t, "after a second restart, the used recovery code", "recovery", codes[0])
	s := signInWith(t, "recovery", codes[1], "/.mfa/enroll/totp?return=%2F")
	v := enrollPage(t, s, "/.mfa/enroll/totp", nil).view(t, http.StatusOK)
	if v.Step != "totp_settings" || v.RecoveryLeft == nil || *v.RecoveryLeft != len(codes)-2 {
		t.Fatalf("the app page: step %q, recovery_codes_left %v, want totp_settings with %d", v.Step, v.RecoveryLeft, len(codes)-2)
	}
}

// TestTOTPFirstLoginEnrollment sets up an app during sign-in under
// "enroll first_login", for a user with no email address: the code that
// confirms the app signs her in. Her browser sends a spoofed Host and
// X-Forwarded-Host; the issuer is still the host of base_url. Once she has
// an app, a sign-in flow can no longer set one up.
func TestTOTPFirstLoginEnrollment(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, totpSite(t, srv, up, `		storage badger `+t.TempDir()+`
		secret_key `+testSecret+`
		base_url https://app.example.com
		totp {
			enroll first_login
		}`))

	// Alice's browser reaches the site under another name: the issuer
	// the app is told must still be the host of base_url.
	c := spoofHost(newClient(t).withBasicAuth("alice", alicePassword), "evil.example")
	const target = "/private/page?x=1"
	r := c.get(target, "text/html")
	if r.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: status %d, want 302: %s", target, r.StatusCode, r.body)
	}
	r = c.get(r.Header.Get("Location"), "application/json")
	v := r.view(t, http.StatusOK)
	if v.Step != "choose" || len(v.Methods) != 0 || v.Enroll != "/.mfa/enroll/totp" {
		t.Fatalf("no factor yet: step %q, methods %q, enroll %q; want choose, none, the enrollment page", v.Step, v.Methods, v.Enroll)
	}
	if r := c.postJSON("/.mfa/send", map[string]string{"method": "email"}); r.StatusCode != http.StatusForbidden {
		t.Fatalf("send to a user with no address: status %d, want 403: %s", r.StatusCode, r.body)
	}

	page := enrollPage(t, c, v.Enroll, nil)
	secret := scan(t, page, "app.example.com", "alice")
	if uri := page.view(t, http.StatusOK).OTPAuthURI; strings.Contains(uri, "evil") {
		t.Fatalf("the otpauth URI names the spoofed host: %s", uri)
	}

	csrf := page.view(t, http.StatusOK).CSRFToken
	t0 := time.Now()
	r = c.postJSON("/.mfa/enroll/totp", map[string]string{"action": "confirm", "code": totpref.Code(secret, t0, 5), "csrf_token": csrf})
	if v := r.view(t, http.StatusUnauthorized); v.Error != "invalid_code" {
		t.Fatalf("wrong first code: error %q, want invalid_code", v.Error)
	}
	if _, ok := protected(t, c, target); ok {
		t.Fatal("a wrong first code let the browser in")
	}

	// The right code: recovery codes, back to the page first asked for,
	// and a session.
	r = c.postJSON("/.mfa/enroll/totp", map[string]string{"action": "confirm", "code": totpref.Code(secret, t0, 0), "csrf_token": csrf})
	var session bool
	for _, ck := range r.Cookies() {
		if strings.HasPrefix(strings.TrimPrefix(ck.Name, "__Host-"), "mfa_session-") && ck.Value != "" && ck.MaxAge >= 0 {
			session = true
		}
	}
	if !session {
		t.Errorf("the confirm answer sets no session cookie: %q", r.Header.Values("Set-Cookie"))
	}
	v = r.view(t, http.StatusOK)
	if v.Step != "recovery_codes" || len(v.RecoveryCodes) != 10 || v.Redirect != target {
		t.Fatalf("confirm: step %q, %d recovery codes, redirect %q; want recovery_codes, 10, %s", v.Step, len(v.RecoveryCodes), v.Redirect, target)
	}
	h, ok := protected(t, c, target)
	if !ok || h.Get("X-Mfa-User") != "alice" || h.Get("X-Mfa-Method") != "totp" {
		t.Fatalf("after enrolling at sign-in: upstream reached %v, X-Mfa-User %q, X-Mfa-Method %q", ok, h.Get("X-Mfa-User"), h.Get("X-Mfa-Method"))
	}

	// Trust on first use only: another browser without a session cannot
	// set up a second app, and signs in with the first.
	other := newClient(t).withBasicAuth("alice", alicePassword)
	v = other.get("/.mfa/", "application/json").view(t, http.StatusOK)
	if !slices.Equal(v.Methods, []string{"totp", "recovery"}) || v.Enroll != "" {
		t.Fatalf("with an app: methods %q, enroll %q; want [totp recovery] and no enrollment", v.Methods, v.Enroll)
	}
	if v := enrollPage(t, other, "/.mfa/enroll/totp", nil).view(t, http.StatusForbidden); v.Error != "not_allowed" || v.Secret != "" {
		t.Fatalf("enrollment by a flow once an app exists: error %q, secret %q, want not_allowed", v.Error, v.Secret)
	}
	signInWith(t, "totp", totpref.Code(secret, t0, 1), "/")
}
