package caddymfa

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
)

// registerEnv has SMS and TOTP, and phone registration that requires the
// authenticator app.
func registerEnv(t *testing.T) (*env, *twiliotest.Server) {
	t.Helper()
	return smsEnv(t, func(h *Handler) {
		h.TOTP = &totp.Config{Issuer: "Example"}
		h.SMS.Registration = &authenticators.Registration{DuringLogin: true, Require: []string{"totp"}}
	})
}

// postRegister posts to /register/phone with the session's CSRF token.
func (b *browser) postRegister(fields map[string]string) (*http.Response, map[string]any) {
	b.e.t.Helper()
	if _, ok := fields["csrf_token"]; !ok {
		page := decodeJSON(b.e.t, b.do(request{target: "/.mfa/register/phone?start=1", header: http.Header{"Accept": {"application/json"}}}))
		fields["csrf_token"], _ = page["csrf_token"].(string)
	}
	resp := b.do(request{method: http.MethodPost, target: "/.mfa/register/phone", json: fields})
	return resp, decodeJSON(b.e.t, resp)
}

// Issue 4: a phone number is registered only after the required factor,
// confirmed by a code to the new number; the old number is no longer used.
func TestRegisterPhone(t *testing.T) {
	e, tw := registerEnv(t)
	lastSMS := func() (string, string) { return lastText(t, tw) }
	emailSession, secret, _ := e.enrollApp("alice")

	// The sign-in offers the registration link.
	if st := e.browser("alice").state(); st["register"].(map[string]any)["phone"] == nil {
		t.Errorf("no register link during sign-in: %v", st)
	}

	// A session made with the emailed code is not enough.
	resp := emailSession.do(request{target: "/.mfa/register/phone", header: http.Header{"Accept": {"application/json"}}})
	v := decodeJSON(t, resp)
	if resp.StatusCode != http.StatusForbidden || v["step"] != stepRegisterRequired || !slices.Equal(strs(v["methods"]), []string{"totp"}) {
		t.Fatalf("register after an emailed code: %d %v", resp.StatusCode, v)
	}
	if resp := emailSession.do(request{method: http.MethodPost, target: "/.mfa/register/phone", json: map[string]string{"action": "send", "address": "+12015550177"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("POST register after an emailed code: %d", resp.StatusCode)
	}

	// The app, then straight back to the registration (the flow
	// remembers it).
	e.clock.add(time.Minute)
	b := e.browser("alice")
	b.do(request{target: "/.mfa/register/phone?return=%2Fsettings", header: http.Header{"Accept": {"application/json"}}}).Body.Close()
	done := decodeJSON(t, b.postJSON("/verify", map[string]string{"method": "totp", "code": e.code(secret, 0)}))
	if done["redirect"] != "/.mfa/register/phone?return=%2Fsettings" {
		t.Fatalf("after the app: redirect %v", done["redirect"])
	}
	_, form := b.postRegister(map[string]string{"action": "send", "address": "+1 (201) 555-0177", "return": "/settings"})
	if form["step"] != stepRegisterVerify || form["destination"] != "+1*******77" {
		t.Fatalf("send to the new number: %v", form)
	}
	code, to := lastSMS()
	if to != "+12015550177" {
		t.Fatalf("the code went to %s, want the new number", to)
	}
	if resp, v := b.postRegister(map[string]string{"action": "confirm", "code": wrongCode(code)}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong code: %d %v", resp.StatusCode, v)
	}
	resp, v = b.postRegister(map[string]string{"action": "confirm", "code": code})
	if resp.StatusCode != 200 || v["redirect"] != "/settings" {
		t.Fatalf("confirm: %d %v", resp.StatusCode, v)
	}

	// Codes now go to the new number only.
	other := e.browser("alice")
	if d := other.state()["destinations"].(map[string]any); d["sms"] != "+1*******77" {
		t.Errorf("destinations after registering: %v", d)
	}
	other.postJSON("/send", map[string]string{"method": "sms"})
	if _, to := lastSMS(); to != "+12015550177" {
		t.Errorf("a sign-in code went to %s", to)
	}
	waitFor(t, func() bool {
		return slices.ContainsFunc(e.notices(), func(s string) bool { return strings.Contains(s, "phone number was added") })
	})
}

// Registration input is validated, and a bad number never gets a text.
func TestRegisterPhoneRefusesBadNumbers(t *testing.T) {
	e, tw := registerEnv(t)
	_, secret, _ := e.enrollApp("alice")
	e.clock.add(time.Minute)
	b := e.browser("alice")
	b.postJSON("/verify", map[string]string{"method": "totp", "code": e.code(secret, 0)})
	for _, bad := range []string{"", "12015550177", "+1201555017\r\nTo: +1", "+15551234567", "+46 70 123 45 67x", strings.Repeat("9", 100)} {
		if resp, v := b.postRegister(map[string]string{"action": "send", "address": bad}); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%q: %d %v", bad, resp.StatusCode, v)
		}
	}
	if n := len(tw.Messages()); n != 0 {
		t.Errorf("%d texts sent to bad numbers", n)
	}
}

// Provision refuses a registration that the changed factor would
// authorize itself.
func TestRegistrationNeedsAnotherFactor(t *testing.T) {
	h, _ := testConfig(t)
	h.SMS = &sms.Config{ProviderRaw: []byte(`{"provider":"outbox","dir":` + quote(t.TempDir()) + `}`),
		Registration: &authenticators.Registration{Require: []string{"sms"}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	err := h.Provision(ctx)
	if err == nil {
		err = h.Validate()
	}
	_ = h.Cleanup()
	if err == nil || !strings.Contains(err.Error(), "authorize its own change") {
		t.Fatalf("error %v", err)
	}
}

// Email registration: a new address, confirmed by a code to it, takes the
// place of the one on file.
func TestRegisterEmail(t *testing.T) {
	e := totpEnv(t, "", func(h *Handler) {
		h.Email.Registration = &authenticators.Registration{}
	})
	_, secret, _ := e.enrollApp("alice")
	e.clock.add(time.Minute)
	b := e.browser("alice")
	if resp := b.postJSON("/verify", map[string]string{"method": "totp", "code": e.code(secret, 0)}); resp.StatusCode != 200 {
		t.Fatalf("app sign-in: %d", resp.StatusCode)
	}
	page := decodeJSON(t, b.do(request{target: "/.mfa/register/email", header: http.Header{"Accept": {"application/json"}}}))
	if page["step"] != stepRegister || page["destination"] != "a***@e***.com" {
		t.Fatalf("register page: %v", page)
	}
	token := page["csrf_token"].(string)
	resp := b.do(request{method: http.MethodPost, target: "/.mfa/register/email", json: map[string]string{"action": "send", "address": "Alice.New@Example.org", "csrf_token": token}})
	if v := decodeJSON(t, resp); v["step"] != stepRegisterVerify || v["destination"] != "A***@e***.org" {
		t.Fatalf("send: %v", v)
	}
	msgs := e.outboxMessages()
	if !strings.Contains(msgs[len(msgs)-1], "Alice.New@Example.org") && !strings.Contains(strings.ToLower(msgs[len(msgs)-1]), "alice.new@example.org") {
		t.Fatalf("the code did not go to the new address")
	}
	resp = b.do(request{method: http.MethodPost, target: "/.mfa/register/email", json: map[string]string{"action": "confirm", "code": e.lastCode(), "csrf_token": token}})
	if resp.StatusCode != 200 {
		t.Fatalf("confirm: %d", resp.StatusCode)
	}
	if d := e.browser("alice").state()["destinations"].(map[string]any); d["email"] != "A***@e***.org" {
		t.Errorf("destinations after registering: %v", d)
	}
}

// SECURITY.md E30: a factor change ends the user's other sessions; the
// browser that made it stays signed in. A replaced number's notice goes to
// the old number, never to the new one.
func TestFactorChangeEndsOtherSessions(t *testing.T) {
	t.Run("app added", func(t *testing.T) {
		e := totpEnv(t, "")
		other := e.signIn("alice")
		b, _, _ := e.enrollApp("alice")
		e.h.sessions.cache = newSessionCache(maxCachedSessions)
		if resp := other.do(request{target: "/app"}); resp.StatusCode == http.StatusOK {
			t.Error("another session survived adding an app")
		}
		if resp := b.do(request{target: "/app"}); resp.StatusCode != http.StatusOK {
			t.Errorf("the session that added the app ended: %d", resp.StatusCode)
		}
	})
	t.Run("phone replaced", func(t *testing.T) {
		e, tw := smsEnv(t, func(h *Handler) {
			h.Email = nil
			h.TOTP = &totp.Config{Issuer: "Example", Enroll: totp.EnrollFirstLogin}
			h.SMS.Registration = &authenticators.Registration{Require: []string{"totp"}}
		})
		b := e.browser("alice")
		b.state()
		_, page := b.enrollPage("")
		secret := page["secret"].(string)
		b.postEnroll(map[string]string{"code": e.code(secret, 0)})
		e.clock.add(time.Minute)
		other := e.browser("alice")
		if resp := other.postJSON("/verify", map[string]string{"method": "totp", "code": e.code(secret, 0)}); resp.StatusCode != 200 {
			t.Fatalf("second session: %d", resp.StatusCode)
		}
		// b's session came from the app, minutes ago: it may register.
		b.postRegister(map[string]string{"action": "send", "address": "+12015550177"})
		code, _ := lastText(t, tw)
		if resp, v := b.postRegister(map[string]string{"action": "confirm", "code": code}); resp.StatusCode != 200 {
			t.Fatalf("confirm: %d %v", resp.StatusCode, v)
		}
		e.h.sessions.cache = newSessionCache(maxCachedSessions)
		if resp := other.do(request{target: "/app"}); resp.StatusCode == http.StatusOK {
			t.Error("another session survived the number change")
		}
		if resp := b.do(request{target: "/app"}); resp.StatusCode != http.StatusOK {
			t.Errorf("the session that changed the number ended: %d", resp.StatusCode)
		}
		notice := func() (twiliotest.Message, bool) {
			for _, m := range tw.Messages() {
				if strings.Contains(m.Body, "phone number") {
					return m, true
				}
			}
			return twiliotest.Message{}, false
		}
		waitFor(t, func() bool { _, ok := notice(); return ok })
		if m, _ := notice(); m.To != "+12015550123" {
			t.Errorf("the change notice went to %s, want the old number: %q", m.To, m.Body)
		}
	})
}

// SECURITY.md N62 for email: a send to a second address that is refused
// (max_sends) leaves the first one pending; the code mailed to the first
// address registers that address, never the second, which got nothing.
func TestRegisterEmailRefusedSendBindsCode(t *testing.T) {
	e := totpEnv(t, "", func(h *Handler) {
		h.Email.Registration = &authenticators.Registration{}
		h.Email.MaxSends = 1
	})
	_, secret, _ := e.enrollApp("alice")
	e.clock.add(time.Minute)
	b := e.browser("alice")
	if resp := b.postJSON("/verify", map[string]string{"method": "totp", "code": e.code(secret, 0)}); resp.StatusCode != 200 {
		t.Fatalf("app sign-in: %d", resp.StatusCode)
	}
	page := decodeJSON(t, b.do(request{target: "/.mfa/register/email", header: http.Header{"Accept": {"application/json"}}}))
	token := page["csrf_token"].(string)
	post := func(fields map[string]string) *http.Response {
		fields["csrf_token"] = token
		return b.do(request{method: http.MethodPost, target: "/.mfa/register/email", json: fields})
	}
	if resp := post(map[string]string{"action": "send", "address": "alice.new@example.org"}); resp.StatusCode != 200 {
		t.Fatalf("first send: %d", resp.StatusCode)
	}
	code := e.lastCode()
	sent := len(e.outboxMessages())
	if resp := post(map[string]string{"action": "send", "address": "mallory@example.net"}); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("send beyond max_sends: %d, want 429", resp.StatusCode)
	}
	if n := len(e.outboxMessages()); n != sent {
		t.Fatalf("the refused send wrote %d messages", n-sent)
	}
	resp := post(map[string]string{"action": "confirm", "code": code})
	if v := decodeJSON(t, resp); resp.StatusCode != 200 || v["destination"] != "a***@e***.org" {
		t.Fatalf("confirm: %d %v, want the address that received the code", resp.StatusCode, v)
	}
	if d := e.browser("alice").state()["destinations"].(map[string]any); d["email"] != "a***@e***.org" {
		t.Errorf("destinations after registering: %v", d)
	}
}
