package caddymfa

import (
	"bytes"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/internal/mailtest"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// totpEnv is the test handler with TOTP on: email is the enrollment gate
// (enroll verified) unless enroll says otherwise.
func totpEnv(t *testing.T, enroll string, modify ...func(*Handler)) *env {
	t.Helper()
	h, outbox := testConfig(t)
	h.TOTP = &totp.Config{Issuer: "Example", Enroll: enroll}
	for _, m := range modify {
		m(h)
	}
	return newEnv(t, h, outbox)
}

// code is the app's code for the env's clock, offset steps away.
func (e *env) code(secret string, offset int64) string {
	return totpref.Code(secret, e.clock.now(), offset)
}

// enrollPage GETs the enrollment page as JSON.
func (b *browser) enrollPage(query string) (*http.Response, map[string]any) {
	b.e.t.Helper()
	resp := b.do(request{target: "/.mfa/enroll/totp" + query, header: http.Header{"Accept": {"application/json"}}})
	return resp, decodeJSON(b.e.t, resp)
}

// postEnroll POSTs to the enrollment endpoint with the page's CSRF token.
func (b *browser) postEnroll(fields map[string]string) (*http.Response, map[string]any) {
	b.e.t.Helper()
	if _, ok := fields["csrf_token"]; !ok {
		_, page := b.enrollPage("")
		fields["csrf_token"], _ = page["csrf_token"].(string)
	}
	resp := b.do(request{method: http.MethodPost, target: "/.mfa/enroll/totp", json: fields})
	return resp, decodeJSON(b.e.t, resp)
}

// enrollApp signs user in by email and sets up an app; it returns the
// signed-in browser, the secret and the recovery codes.
func (e *env) enrollApp(user string) (*browser, string, []string) {
	e.t.Helper()
	b := e.signIn(user)
	resp, page := b.enrollPage("")
	if resp.StatusCode != http.StatusOK || page["step"] != stepEnrollTOTP {
		e.t.Fatalf("enrollment page: %d %v", resp.StatusCode, page)
	}
	secret := page["secret"].(string)
	resp, done := b.postEnroll(map[string]string{"code": e.code(secret, 0), "csrf_token": page["csrf_token"].(string)})
	if resp.StatusCode != http.StatusOK || done["step"] != stepRecoveryCodes {
		e.t.Fatalf("confirm: %d %v", resp.StatusCode, done)
	}
	return b, secret, strs(done["recovery_codes"])
}

// verifyWith signs in a fresh browser with a method and code, and returns
// the status and the browser.
func (e *env) verifyWith(user, method, code string) (int, *browser) {
	e.t.Helper()
	b := e.browser(user)
	resp := b.postJSON("/verify", map[string]string{"method": method, "code": code})
	resp.Body.Close()
	return resp.StatusCode, b
}

func strs(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// The whole path: email gate, enrollment, recovery codes, sign-in with the
// app, replay refused, the choose step with the last method first.
func TestTOTPEnrollAndSignIn(t *testing.T) {
	e := totpEnv(t, "")
	b := e.browser("alice")
	st := b.state()
	if got := strs(st["methods"]); !slices.Equal(got, []string{"email"}) || st["enroll"] != nil {
		t.Fatalf("before enrollment: methods %v, enroll %v", got, st["enroll"])
	}

	// The emailed code leads to the enrollment page, then the return path.
	b.do(request{target: "/.mfa/?return=%2Fdocs", header: http.Header{"Accept": {"application/json"}}})
	b.postJSON("/send", map[string]string{"method": "email"})
	resp := b.postJSON("/verify", map[string]string{"method": "email", "code": e.lastCode()})
	done := decodeJSON(t, resp)
	if want := "/.mfa/enroll/totp?return=%2Fdocs"; done["redirect"] != want {
		t.Fatalf("after the emailed code: redirect %v, want %s", done["redirect"], want)
	}
	resp, page := b.enrollPage("?return=%2Fdocs")
	if resp.StatusCode != 200 || page["step"] != stepEnrollTOTP || page["can_skip"] != true || page["return"] != "/docs" {
		t.Fatalf("enrollment page: %d %v", resp.StatusCode, page)
	}
	secret := page["secret"].(string)
	if _, again := b.enrollPage(""); again["secret"] != secret {
		t.Error("reloading the page changed the secret")
	}
	resp, bad := b.postEnroll(map[string]string{"code": wrongCode(e.code(secret, 0))})
	if resp.StatusCode != http.StatusUnauthorized || bad["error"] != errCodeInvalid || bad["secret"] != secret {
		t.Fatalf("wrong first code: %d %v", resp.StatusCode, bad)
	}
	resp, rc := b.postEnroll(map[string]string{"code": e.code(secret, 0), "return": "/docs"})
	codes := strs(rc["recovery_codes"])
	if resp.StatusCode != 200 || len(codes) != 10 || rc["redirect"] != "/docs" {
		t.Fatalf("confirm: %d %v", resp.StatusCode, rc)
	}

	// Sign in with the app: the code of the enrollment step is spent.
	if status, _ := e.verifyWith("alice", "totp", e.code(secret, 0)); status != http.StatusUnauthorized {
		t.Errorf("the enrollment code signed in again: %d", status)
	}
	e.clock.add(30 * time.Second)
	status, app := e.verifyWith("alice", "totp", e.code(secret, 0))
	if status != http.StatusOK {
		t.Fatalf("fresh code: %d", status)
	}
	if resp := app.do(request{target: "/docs"}); resp.StatusCode != 200 || e.replVals[len(e.replVals)-1]["mfa.method"] != "totp" {
		t.Fatalf("protected page with the app's session: %d %v", resp.StatusCode, e.replVals)
	}
	if status, _ := e.verifyWith("alice", "totp", e.code(secret, 0)); status != http.StatusUnauthorized {
		t.Errorf("replayed code: %d, want 401", status)
	}

	// The choose step lists the app first (last used), recovery last.
	st = e.browser("alice").state()
	if got := strs(st["methods"]); !slices.Equal(got, []string{"totp", "email", "recovery"}) || st["method"] != "totp" {
		t.Errorf("methods %v, preselected %v", got, st["method"])
	}
	e.signIn("alice")
	st = e.browser("alice").state()
	if got := strs(st["methods"]); !slices.Equal(got, []string{"email", "totp", "recovery"}) || st["method"] != "email" {
		t.Errorf("after an email sign-in: methods %v, preselected %v", got, st["method"])
	}
	if page := e.browser("alice").do(request{target: "/.mfa/?method=totp", header: http.Header{"Accept": {"application/json"}}}); true {
		v := decodeJSON(t, page)
		if v["step"] != stepVerify || v["method"] != "totp" {
			t.Errorf("?method=totp: %v", v)
		}
	}
}

// SECURITY.md C17: skew ±1 step is accepted, ±2 is not.
func TestTOTPSkew(t *testing.T) {
	e := totpEnv(t, "")
	_, secret, _ := e.enrollApp("alice")
	e.clock.add(10 * time.Minute)
	for _, tt := range []struct {
		offset int64
		want   int
	}{
		{-2, 401}, {-1, 200}, {2, 401}, {1, 200},
	} {
		if status, _ := e.verifyWith("alice", "totp", e.code(secret, tt.offset)); status != tt.want {
			t.Errorf("offset %+d: %d, want %d", tt.offset, status, tt.want)
		}
	}
}

// SECURITY.md C18: one code, fifty concurrent submissions, one session.
func TestTOTPReplayUnderConcurrency(t *testing.T) {
	e := totpEnv(t, "")
	_, secret, _ := e.enrollApp("alice")
	e.clock.add(time.Minute)
	code := e.code(secret, 0)
	browsers := make([]*browser, 50)
	tokens := make([]string, 50)
	for i := range browsers {
		browsers[i] = e.browser("alice")
		tokens[i] = browsers[i].state()["csrf_token"].(string)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i, b := range browsers {
		wg.Go(func() {
			resp := b.do(request{method: http.MethodPost, target: "/.mfa/verify", json: map[string]string{"method": "totp", "code": code, "csrf_token": tokens[i]}})
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d of 50 concurrent submissions of one code succeeded, want 1", ok)
	}
}

// SECURITY.md C21: malformed input is refused and counted in the lockout.
func TestTOTPMalformedInputsAreCounted(t *testing.T) {
	inputs := []string{"", "   ", "12345", "1234567", "１２３４５６", "+123456", "12\x003456", "123456\n"}
	e := totpEnv(t, "", func(h *Handler) { h.Lockout = &Lockout{Failures: len(inputs) + 1} })
	_, secret, _ := e.enrollApp("alice")
	e.clock.add(time.Minute)
	b := e.browser("alice")
	for _, in := range inputs {
		resp := b.postJSON("/verify", map[string]string{"method": "totp", "code": in})
		if got := decodeJSON(t, resp); resp.StatusCode != http.StatusUnauthorized || got["error"] != errCodeInvalid {
			t.Errorf("input %q: %d %v", in, resp.StatusCode, got)
		}
	}
	big := bytes.Repeat([]byte("1"), 1<<20)
	token := b.state()["csrf_token"].(string)
	resp := b.do(request{method: http.MethodPost, target: "/.mfa/verify", form: url.Values{"method": {"totp"}, "csrf_token": {token}, "code": {string(big)}}})
	resp.Body.Close()
	// A browser's form goes back to the flow's page, which says why once.
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("1 MB body: %d, want 303", resp.StatusCode)
	}
	resp = b.do(request{target: "/.mfa/", header: htmlAccept()})
	if page := readBody(t, resp); resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(page, "The request is too large.") {
		t.Errorf("the page after a 1 MB body: %d\n%s", resp.StatusCode, page)
	}
	// That was failure number len(inputs)+1: the next attempt locks, and
	// a right code is no longer compared.
	if status, _ := e.verifyWith("alice", "totp", e.code(secret, 0)); status != http.StatusUnauthorized {
		t.Fatalf("right code after %d malformed inputs: %d, want 401 (locked)", len(inputs)+1, status)
	}
}

// SECURITY.md C19: the secret is 160 bits, stays server-side until
// confirmed, is sealed at rest; the factor is active only after a valid
// code; the pages are not cached.
func TestEnrollmentSecretStaysServerSide(t *testing.T) {
	e := totpEnv(t, "")
	b := e.signIn("alice")
	resp, page := b.enrollPage("")
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	secret := page["secret"].(string)
	key, err := totpref.Key(secret)
	if err != nil || len(key) < 20 {
		t.Fatalf("secret %q: %d bytes, %v; want at least 160 bits", secret, len(key), err)
	}
	for _, c := range resp.Cookies() {
		if strings.Contains(c.Value, strings.ReplaceAll(secret, " ", "")) {
			t.Errorf("cookie %s carries the secret", c.Name)
		}
	}
	// Not active yet: the app's code does not sign in.
	if status, _ := e.verifyWith("alice", "totp", e.code(secret, 0)); status != http.StatusUnauthorized {
		t.Errorf("unconfirmed app signed in: %d", status)
	}
	if st := e.browser("alice").state(); slices.Contains(strs(st["methods"]), "totp") {
		t.Errorf("unconfirmed app offered: %v", st["methods"])
	}
	e.clock.add(30 * time.Second)
	if resp, _ := b.postEnroll(map[string]string{"code": e.code(secret, 0)}); resp.StatusCode != 200 {
		t.Fatalf("confirm: %d", resp.StatusCode)
	}
	raw := strings.ReplaceAll(secret, " ", "")
	recs, err := e.h.store.List(t.Context(), "", 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		if bytes.Contains(rec.Value, []byte(raw)) || bytes.Contains(rec.Value, key) ||
			bytes.Contains(rec.Value, []byte(base32.StdEncoding.EncodeToString(key))) {
			t.Errorf("record %s holds the secret in the clear", rec.Key)
		}
	}
	// A page shown after a restart of the flow still comes from the store.
	if _, ok := e.h.store.Get(t.Context(), keyUser+"alice"); ok != nil {
		t.Fatalf("no user record: %v", ok)
	}
}

// SECURITY.md C19: replacing or removing an app needs the app (or a
// recovery code); every change is notified.
func TestChangingTheAppNeedsTheAppOrARecoveryCode(t *testing.T) {
	e := totpEnv(t, "")
	b, secret, codes := e.enrollApp("alice")
	e.clock.add(time.Minute)

	resp, page := b.enrollPage("?replace=1")
	if resp.StatusCode != 200 || page["needs_current_code"] != true {
		t.Fatalf("replace page: %d %v", resp.StatusCode, page)
	}
	next := page["secret"].(string)
	resp, got := b.postEnroll(map[string]string{"code": e.code(next, 0)})
	if resp.StatusCode != http.StatusUnauthorized || got["error"] != errCodeInvalid {
		t.Fatalf("replace without the current code: %d %v", resp.StatusCode, got)
	}
	resp, got = b.postEnroll(map[string]string{"code": e.code(next, 0), "current_code": wrongCode(e.code(secret, 0))})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("replace with a wrong current code: %d %v", resp.StatusCode, got)
	}
	resp, got = b.postEnroll(map[string]string{"code": e.code(next, 0), "current_code": e.code(secret, 0)})
	if resp.StatusCode != 200 || len(strs(got["recovery_codes"])) != 10 {
		t.Fatalf("replace with the current code: %d %v", resp.StatusCode, got)
	}
	e.clock.add(30 * time.Second)
	if status, _ := e.verifyWith("alice", "totp", e.code(secret, 0)); status != http.StatusUnauthorized {
		t.Errorf("the old app still signs in: %d", status)
	}
	if status, _ := e.verifyWith("alice", "recovery", codes[0]); status != http.StatusUnauthorized {
		t.Errorf("a recovery code of the old set still signs in: %d", status)
	}
	newCodes := strs(got["recovery_codes"])

	// Remove: refused without a code, done with a recovery code.
	if resp, got := b.postEnroll(map[string]string{"action": "remove"}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("remove without a code: %d %v", resp.StatusCode, got)
	}
	if resp, got := b.postEnroll(map[string]string{"action": "remove", "current_code": newCodes[3]}); resp.StatusCode != 200 || got["step"] != stepNotice {
		t.Fatalf("remove with a recovery code: %d %v", resp.StatusCode, got)
	}
	e.clock.add(30 * time.Second)
	if status, _ := e.verifyWith("alice", "totp", e.code(next, 0)); status != http.StatusUnauthorized {
		t.Errorf("the removed app still signs in: %d", status)
	}
	if status, _ := e.verifyWith("alice", "recovery", newCodes[4]); status != http.StatusUnauthorized {
		t.Errorf("recovery codes survive removing the app: %d", status)
	}

	waitFor(t, func() bool { return countPrefix(e.notices(), "Security notice") >= 4 })
	notices := e.notices()
	for _, want := range []string{"added", "recovery code was used", "removed"} {
		if !slices.ContainsFunc(notices, func(s string) bool { return strings.Contains(s, want) }) {
			t.Errorf("no notice containing %q in %q", want, notices)
		}
	}
}

// notices returns the subjects of the security notices in the outbox.
func (e *env) notices() []string {
	var out []string
	for _, m := range e.outboxMessages() {
		if parsed, err := mailtest.Parse([]byte(m)); err == nil && isNotice(parsed.Text) {
			out = append(out, parsed.Subject)
		}
	}
	return out
}

func countPrefix(list []string, prefix string) int {
	n := 0
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}

// waitFor polls cond for up to five seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 5s")
}

// SECURITY.md J47: ten codes of at least 64 bits, stored hashed, single
// use, renewal revokes the old set, use is notified and audited.
func TestRecoveryCodes(t *testing.T) {
	e := totpEnv(t, "")
	core, logs := observer.New(zap.InfoLevel)
	e.h.logger = zap.New(core)
	e.h.wire()
	b, secret, codes := e.enrollApp("alice")
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes, want 10", len(codes))
	}
	for _, c := range codes {
		raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(strings.ReplaceAll(c, "-", "")))
		if err != nil || len(raw)*8 < 64 {
			t.Errorf("code %q: %d bits, %v", c, len(raw)*8, err)
		}
	}
	recs, _ := e.h.store.List(t.Context(), "", 0, false)
	for _, rec := range recs {
		for _, c := range codes {
			if bytes.Contains(rec.Value, []byte(c)) || bytes.Contains(rec.Value, []byte(strings.ReplaceAll(c, "-", ""))) {
				t.Errorf("record %s holds recovery code %s", rec.Key, c)
			}
		}
	}
	status, rb := e.verifyWith("alice", "recovery", strings.ToUpper(codes[0]))
	if status != http.StatusOK {
		t.Fatalf("recovery code: %d", status)
	}
	if status, _ := e.verifyWith("alice", "recovery", codes[0]); status != http.StatusUnauthorized {
		t.Errorf("recovery code used twice: %d", status)
	}
	_ = rb
	waitFor(t, func() bool { return len(e.notices()) >= 2 })
	if n := e.notices(); !slices.ContainsFunc(n, func(s string) bool { return strings.Contains(s, "recovery code was used") }) {
		t.Errorf("notices %q", n)
	}
	if logs.FilterMessage("recovery code used").FilterField(zap.String("user", "alice")).Len() != 1 {
		t.Error("no audit line for the recovery code")
	}

	// Renewal needs a current code and revokes the old set.
	e.clock.add(time.Minute)
	resp, got := b.postEnroll(map[string]string{"action": "recovery_codes", "current_code": e.code(secret, 0)})
	renewed := strs(got["recovery_codes"])
	if resp.StatusCode != 200 || len(renewed) != 10 {
		t.Fatalf("renew: %d %v", resp.StatusCode, got)
	}
	if status, _ := e.verifyWith("alice", "recovery", codes[1]); status != http.StatusUnauthorized {
		t.Errorf("an old code works after renewal: %d", status)
	}
	if status, _ := e.verifyWith("alice", "recovery", renewed[9]); status != http.StatusOK {
		t.Errorf("a renewed code: %d", status)
	}
	if resp, page := b.enrollPage(""); resp.StatusCode != 200 || page["recovery_codes_left"] != 9.0 {
		t.Errorf("settings page: %d %v", resp.StatusCode, page)
	}
}

// SECURITY.md J46: emailed codes (form and JSON), app codes, recovery codes
// and the current-code field of the enrollment page share one lockout.
func TestEveryEntryPointSharesOneLockout(t *testing.T) {
	e := totpEnv(t, "", func(h *Handler) { h.Lockout = &Lockout{Failures: 5} })
	settings, secret, codes := e.enrollApp("alice")
	e.clock.add(time.Minute)

	b := e.browser("alice")
	b.postJSON("/send", map[string]string{"method": "email"})
	emailed := e.lastCode()
	token := b.state()["csrf_token"].(string)
	form := b.do(request{method: http.MethodPost, target: "/.mfa/verify", form: url.Values{"method": {"email"}, "code": {wrongCode(emailed)}, "csrf_token": {token}}})
	form.Body.Close()
	b.postJSON("/resend", map[string]string{"method": "email"})
	emailed = e.lastCode()
	b.postJSON("/verify", map[string]string{"method": "email", "code": wrongCode(emailed)})
	e.verifyWith("alice", "totp", wrongCode(e.code(secret, 0)))
	e.verifyWith("alice", "recovery", "aaaa-bbbb-cccc-dddd")
	settings.postEnroll(map[string]string{"action": "recovery_codes", "current_code": "999999"})
	// Five failures: the next attempt locks, whatever the method.
	for _, try := range []struct{ method, code string }{
		{"totp", e.code(secret, 0)},
		{"recovery", codes[0]},
	} {
		if status, _ := e.verifyWith("alice", try.method, try.code); status != http.StatusUnauthorized {
			t.Errorf("right %s code while locked: %d", try.method, status)
		}
	}
	if resp := b.postJSON("/verify", map[string]string{"method": "email", "code": emailed}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("right emailed code while locked: %d", resp.StatusCode)
	}
	if resp := settings.do(request{target: "/private"}); resp.StatusCode == http.StatusOK {
		t.Error("the lockout left a session alive")
	}
}

// SECURITY.md C20: the otpauth URI takes its issuer from the configuration
// and the label from the user; labels with reserved characters round-trip;
// a spoofed Host or X-Forwarded-Host changes nothing.
func TestOTPAuthURI(t *testing.T) {
	e := totpEnv(t, "first_login", func(h *Handler) {
		h.TOTP.Issuer = ""
		h.BaseURL = "https://app.example.com"
	})
	// ("/" cannot occur: user names key store records, canonicalUser
	// refuses it.)
	for _, user := range []string{"carol", "a:b?c&d#e%f g+h", "jörg"} {
		t.Run(user, func(t *testing.T) {
			b := e.browser(user)
			b.state() // the sign-in flow that may enroll (first_login)
			var first string
			for _, hdr := range []http.Header{
				{"Accept": {"application/json"}},
				{"Accept": {"application/json"}, "X-Forwarded-Host": {"evil.example"}},
			} {
				resp := b.do(request{target: "/.mfa/enroll/totp", header: hdr})
				page := decodeJSON(t, resp)
				uri, _ := page["otpauth_uri"].(string)
				if uri == "" {
					t.Fatalf("no URI: %d %v", resp.StatusCode, page)
				}
				if first == "" {
					first = uri
				} else if uri != first {
					t.Errorf("URI changed with headers %v:\n%s\n%s", hdr, first, uri)
				}
			}
			u, err := url.Parse(first)
			if err != nil {
				t.Fatal(err)
			}
			if want := "/app.example.com:" + user; u.Path != want {
				t.Errorf("label %q, want %q", u.Path, want)
			}
			if u.Query().Get("issuer") != "app.example.com" || u.Query().Get("secret") == "" {
				t.Errorf("query %v", u.Query())
			}
			if strings.Contains(first, "evil") || strings.Contains(first, "app.test") {
				t.Errorf("URI from request headers: %s", first)
			}
		})
	}
}

// Enrollment during sign-in (first_login): the first factor alone lets a
// user without an app set one up, and the valid code signs them in.
func TestEnrollFirstLogin(t *testing.T) {
	e := totpEnv(t, "first_login")
	b := e.browser("carol") // no address on file
	b.do(request{target: "/.mfa/?return=%2Fwiki"}).Body.Close()
	st := b.state()
	if st["step"] != stepChoose || st["enroll"] != "/.mfa/enroll/totp" || st["error"] != nil {
		t.Fatalf("choose: %v", st)
	}
	resp, page := b.enrollPage("")
	if resp.StatusCode != 200 || page["can_skip"] == true {
		t.Fatalf("enrollment page: %d %v", resp.StatusCode, page)
	}
	secret := page["secret"].(string)
	resp, rc := b.postEnroll(map[string]string{"code": e.code(secret, 0)})
	if resp.StatusCode != 200 || rc["redirect"] != "/wiki" {
		t.Fatalf("confirm: %d %v", resp.StatusCode, rc)
	}
	if resp := b.do(request{target: "/wiki"}); resp.StatusCode != 200 {
		t.Fatalf("protected page after enrolling: %d", resp.StatusCode)
	}
	// Trust on first use only: a second browser with the first factor
	// cannot enroll another app.
	other := e.browser("carol")
	other.state()
	if resp, _ := other.enrollPage(""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("second first_login enrollment: %d, want 403", resp.StatusCode)
	}
}

// enroll verified: no session, no enrollment; an old session must sign in
// again; enroll off: nobody enrolls by themselves.
func TestEnrollPolicies(t *testing.T) {
	t.Run("verified", func(t *testing.T) {
		e := totpEnv(t, "verified")
		b := e.browser("carol")
		b.state()
		if resp, got := b.enrollPage(""); resp.StatusCode != http.StatusForbidden || got["error"] != errCodeNotAllowed {
			t.Errorf("without a session: %d %v", resp.StatusCode, got)
		}
		if st := b.state(); st["error"] != errCodeNoMethod || st["enroll"] != nil {
			t.Errorf("carol (no address) is offered %v", st)
		}
		signed := e.signIn("alice")
		e.clock.add(enrollFreshness + time.Second)
		if resp, got := signed.enrollPage(""); resp.StatusCode != http.StatusForbidden || got["error"] != errCodeNotAllowed {
			t.Errorf("session older than %s: %d %v", enrollFreshness, resp.StatusCode, got)
		}
	})
	t.Run("off", func(t *testing.T) {
		e := totpEnv(t, "off")
		b := e.signIn("alice")
		if resp, got := b.enrollPage(""); resp.StatusCode != http.StatusForbidden || got["error"] != errCodeNotAllowed {
			t.Errorf("enroll off: %d %v", resp.StatusCode, got)
		}
	})
}

// Standalone sign-in with TOTP on: every name gets the same choice, so the
// list reveals nobody (SECURITY.md H37).
func TestStandaloneOffersTheSameMethodsToEveryName(t *testing.T) {
	e := totpEnv(t, "verified", func(h *Handler) { h.User = new(string) })
	var first map[string]any
	for _, name := range []string{"alice", "nobody", "dave"} {
		b := e.browser("")
		resp := b.postJSON("/identify", map[string]string{"username": name})
		got := decodeJSON(t, resp)
		delete(got, "csrf_token")
		delete(got, "user")
		if first == nil {
			first = got
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(first) {
			t.Errorf("%s: %v, alice: %v", name, got, first)
		}
	}
	if got := strs(first["methods"]); !slices.Equal(got, []string{"totp", "email", "recovery"}) {
		t.Errorf("methods %v", got)
	}
	if len(e.outboxFiles()) != 0 {
		t.Error("identify sent a code before a method was chosen")
	}
}

// The enrollment page in HTML: a QR image as a data URI (not neutralised
// by the template), the secret, no-store.
func TestEnrollmentPageHTML(t *testing.T) {
	e := totpEnv(t, "")
	b := e.signIn("alice")
	resp := b.do(request{target: "/.mfa/enroll/totp", header: http.Header{"Accept": {"text/html"}}})
	body := readBody(t, resp)
	if !strings.Contains(body, `src="data:image/png;base64,`) || strings.Contains(body, "ZgotmplZ") {
		t.Errorf("QR image missing or neutralised:\n%s", body)
	}
	if !strings.Contains(body, `href="otpauth://totp/Example:alice?secret=`) {
		t.Errorf("no otpauth link:\n%s", body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Error("enrollment page may be cached")
	}
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TOTP as the only method (enroll first_login, no email block): the
// first factor enrolls, the app signs in, an emailed code is not a method.
func TestTOTPWithoutEmail(t *testing.T) {
	e := totpEnv(t, "first_login", func(h *Handler) { h.Email = nil })
	b := e.browser("alice")
	b.do(request{target: "/.mfa/?return=%2Fapp"}).Body.Close()
	_, page := b.enrollPage("")
	secret := page["secret"].(string)
	if resp, _ := b.postEnroll(map[string]string{"code": e.code(secret, 0)}); resp.StatusCode != 200 {
		t.Fatalf("confirm: %d", resp.StatusCode)
	}
	e.clock.add(30 * time.Second)
	if st := e.browser("alice").state(); !slices.Equal(strs(st["methods"]), []string{"totp", "recovery"}) {
		t.Errorf("methods %v", st["methods"])
	}
	if status, _ := e.verifyWith("alice", "email", "123456"); status != http.StatusUnauthorized {
		t.Errorf("email without an email block: %d", status)
	}
	if resp := e.browser("alice").postJSON("/send", map[string]string{"method": "email"}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("send without an email block: %d", resp.StatusCode)
	}
	if status, _ := e.verifyWith("alice", "totp", e.code(secret, 0)); status != http.StatusOK {
		t.Errorf("app code: %d", status)
	}
}

// SECURITY.md A9 for apps: with the store failing, app and recovery codes
// and enrollment are denied.
func TestStoreErrorsDenyTOTP(t *testing.T) {
	e := totpEnv(t, "")
	settings, secret, codes := e.enrollApp("alice")
	e.clock.add(time.Minute)
	fs := &faultyStore{Store: e.h.store, err: errors.New("no space left on device")}
	e.h.store = fs
	e.h.wire()
	b := e.browser("alice")
	csrf := b.state()["csrf_token"].(string)
	_, page := settings.enrollPage("")
	fs.armed.Store(true)
	for _, try := range []struct{ method, code string }{{"totp", e.code(secret, 0)}, {"recovery", codes[0]}} {
		resp := b.do(request{method: http.MethodPost, target: "/.mfa/verify", json: map[string]string{"method": try.method, "code": try.code, "csrf_token": csrf}})
		if resp.StatusCode != http.StatusServiceUnavailable || len(resp.Cookies()) != 0 {
			t.Errorf("%s with failing store: %d %v", try.method, resp.StatusCode, resp.Cookies())
		}
	}
	e.h.sessions.cache = newSessionCache(maxCachedSessions)
	resp := settings.do(request{method: http.MethodPost, target: "/.mfa/enroll/totp", json: map[string]string{"action": "recovery_codes", "current_code": e.code(secret, 0), "csrf_token": page["csrf_token"].(string)}})
	if resp.StatusCode == http.StatusOK {
		t.Error("renewing recovery codes with a failing store succeeded")
	}
	fs.armed.Store(false)
	if status, _ := e.verifyWith("alice", "totp", e.code(secret, 0)); status != http.StatusOK {
		t.Errorf("after the store recovered, the unused code: %d", status)
	}
}
