package integration

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// getJSON GETs path as JSON and checks the status.
func getJSON(t *testing.T, c *client, path string, status int) map[string]any {
	t.Helper()
	r := c.get(path, "application/json")
	if r.StatusCode != status {
		t.Fatalf("GET %s: status %d, want %d: %s", path, r.StatusCode, status, r.body)
	}
	return r.json(t)
}

// TestRegisterPhoneOverHTTP changes alice's phone number through a real
// Caddy with sms registration that requires the authenticator app. A
// session made with a texted or an emailed code is refused; a sign-in
// with the app that started on the registration page comes back to it;
// the info page, then the new number, confirmed by the code Twilio
// received for it. From then on codes go to the new number only, and a
// notice is mailed to alice.
func TestRegisterPhoneOverHTTP(t *testing.T) {
	tw := twiliotest.NewServer(t)
	srv := newSMTP(t)
	startCaddy(t, smsSite{
		users: "alice email alice@example.com phone +12015550123",
		sms: relaxedThrottle + `
			registration {
				require totp
				during_login on
				show_info on
			}`,
		mfa: `email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
		}
		totp {
			issuer Example
		}`,
	}.caddyfile(t, tw, newUpstream(t)))
	const (
		oldNumber = "+12015550123"
		newNumber = "+12015550177"
	)

	// Every step of the sign-in links to the registration.
	bySMS := smsClient(t, "alice")
	st := getJSON(t, bySMS, "/.mfa/?return=%2Fsettings", http.StatusOK)
	if reg, _ := st["register"].(map[string]any); reg["phone"] != "/.mfa/register/phone?return=%2Fsettings" {
		t.Errorf("the sign-in links to %v, want the phone registration", st["register"])
	}

	// A session made with a code texted to the old number is refused,
	// and alice has no app yet to authorize the change.
	signInBySMS(t, bySMS, tw, 1, oldNumber)
	v := getJSON(t, bySMS, "/.mfa/register/phone", http.StatusForbidden)
	if v["step"] != "register_required" || len(strs(v["methods"])) != 0 {
		t.Fatalf("registration after a texted code, without an app: %v", v)
	}

	// alice signs in with an emailed code and adds an app.
	byEmail := smsClient(t, "alice")
	signIn(t, byEmail, srv, 1)
	secret := scan(t, enrollPage(t, byEmail, "/.mfa/enroll/totp", nil), "Example", "alice")
	t0 := time.Now()
	confirmEnroll(t, byEmail, enrollCSRF(t, byEmail), totpref.Code(secret, t0, 0), "", "/")
	if m := waitMessage(t, srv, 2); !strings.Contains(m.header.Get("Subject"), "authenticator app was added") {
		t.Fatalf("message 2 is %q, want the notice of the app", m.header.Get("Subject"))
	}

	// A session made with the emailed code is not enough either.
	v = getJSON(t, byEmail, "/.mfa/register/phone", http.StatusForbidden)
	if v["step"] != "register_required" || !slices.Equal(strs(v["methods"]), []string{"totp"}) {
		t.Fatalf("registration after an emailed code: %v, want register_required with totp", v)
	}
	csrf, _ := getJSON(t, byEmail, "/.mfa/", http.StatusOK)["csrf_token"].(string)
	r := byEmail.postJSON("/.mfa/register/phone", map[string]string{"action": "send", "address": newNumber, "csrf_token": csrf})
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("POST registration after an emailed code: status %d, want 403: %s", r.StatusCode, r.body)
	}
	if n := tw.Requests(); n != 1 {
		t.Fatalf("the Twilio server got %d requests, want 1", n)
	}

	// A sign-in with the app that starts on the registration page comes
	// back to it: first the explanation, then the form.
	c := smsClient(t, "alice")
	v = getJSON(t, c, "/.mfa/register/phone?return=%2Fsettings", http.StatusForbidden)
	if v["step"] != "register_required" || !slices.Equal(strs(v["methods"]), []string{"totp"}) {
		t.Fatalf("registration before signing in: %v", v)
	}
	v = verifyWith(t, c, "totp", totpref.Code(secret, t0, 1)).json(t)
	if v["step"] != "done" || v["redirect"] != "/.mfa/register/phone?return=%2Fsettings" {
		t.Fatalf("after the app's code: %v, want the way back to the registration", v)
	}
	v = getJSON(t, c, v["redirect"].(string), http.StatusOK)
	if v["step"] != "register_info" || v["continue"] != "/.mfa/register/phone?start=1&return=%2Fsettings" {
		t.Fatalf("registration page: %v, want the explanation first", v)
	}
	v = getJSON(t, c, v["continue"].(string), http.StatusOK)
	csrf, _ = v["csrf_token"].(string)
	if v["step"] != "register" || v["destination"] != "+1*******23" || csrf == "" {
		t.Fatalf("registration form: %v", v)
	}

	// The new number gets a code; only that code confirms it.
	r = c.postJSON("/.mfa/register/phone", map[string]string{"action": "send", "address": "+1 (201) 555-0177", "return": "/settings", "csrf_token": csrf})
	if v := r.json(t); r.StatusCode != http.StatusOK || v["step"] != "register_verify" || v["destination"] != "+1*******77" {
		t.Fatalf("send to the new number: status %d: %v", r.StatusCode, v)
	}
	m := waitText(t, tw, 2)
	if m.To != newNumber {
		t.Fatalf("the code went to %s, want the new number %s", m.To, newNumber)
	}
	code := textCode(t, m)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	r = c.postJSON("/.mfa/register/phone", map[string]string{"action": "confirm", "code": wrong, "csrf_token": csrf})
	if v := r.json(t); r.StatusCode != http.StatusUnauthorized || v["error"] != "invalid_code" {
		t.Fatalf("a wrong code: status %d: %v", r.StatusCode, v)
	}
	if _, v := admin(t, http.MethodGet, "/mfa/users/alice", ""); v.(map[string]any)["registered_phone"] != nil {
		t.Fatalf("a wrong code registered the number: %v", v)
	}
	r = c.postJSON("/.mfa/register/phone", map[string]string{"action": "confirm", "code": code, "csrf_token": csrf})
	if v := r.json(t); r.StatusCode != http.StatusOK || v["step"] != "done" || v["destination"] != "+1*******77" || v["redirect"] != "/settings" {
		t.Fatalf("confirm: status %d: %v", r.StatusCode, v)
	}
	if _, v := admin(t, http.MethodGet, "/mfa/users/alice", ""); v.(map[string]any)["registered_phone"] != newNumber {
		t.Errorf("the admin API shows %v, want the registered number %s", v, newNumber)
	}

	// A notice is mailed to the address on file.
	notice := waitMessage(t, srv, 3)
	if subject := notice.header.Get("Subject"); !strings.Contains(subject, "phone number was added") {
		t.Errorf("message 3 is %q, want the notice of the new number", subject)
	}
	if strings.Contains(string(notice.Data), "2015550177") {
		t.Error("the notice shows the full new number")
	}

	// The next sign-in: the new number is offered and texted, never the
	// old one.
	next := smsClient(t, "alice")
	if d, _ := next.state()["destinations"].(map[string]any); d["sms"] != "+1*******77" {
		t.Errorf("destinations after the change: %v", d)
	}
	signInBySMS(t, next, tw, 3, newNumber)
	for i, m := range tw.Messages() {
		if i > 0 && m.To != newNumber {
			t.Errorf("text %d went to %s after the change", i+1, m.To)
		}
	}
	if n := tw.Requests(); n != 3 {
		t.Errorf("the Twilio server got %d requests, want 3", n)
	}
}

// TestRegisterRefusedSendConfirmsNothingNew (SECURITY.md N62): the code
// of a registration is bound to the number it was texted to. A send to a
// second number that is refused (max_sends) changes nothing pending: the
// code texted to the first number confirms that number, never the second
// one, which received nothing; the next sign-in text goes to the number
// on file.
func TestRegisterRefusedSendConfirmsNothingNew(t *testing.T) {
	tw := twiliotest.NewServer(t)
	srv := newSMTP(t)
	startCaddy(t, smsSite{
		users: "alice email alice@example.com phone +12015550123",
		sms: relaxedThrottle + `
			max_sends 1
			registration {
				require email
			}`,
		mfa: `email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
		}`,
	}.caddyfile(t, tw, newUpstream(t)))
	const (
		received = "+12015550177"
		never    = "+12015550188"
	)
	c := smsClient(t, "alice")
	signIn(t, c, srv, 1)
	csrf, _ := getJSON(t, c, "/.mfa/register/phone", http.StatusOK)["csrf_token"].(string)
	r := c.postJSON("/.mfa/register/phone", map[string]string{"action": "send", "address": received, "csrf_token": csrf})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("send to %s: status %d: %s", received, r.StatusCode, r.body)
	}
	m := waitText(t, tw, 1)
	if m.To != received {
		t.Fatalf("the code went to %s", m.To)
	}
	code := textCode(t, m)
	r = c.postJSON("/.mfa/register/phone", map[string]string{"action": "send", "address": never, "csrf_token": csrf})
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("send to %s beyond max_sends: status %d, want 429: %s", never, r.StatusCode, r.body)
	}
	if n := tw.Requests(); n != 1 {
		t.Fatalf("the Twilio server got %d requests, want 1", n)
	}
	r = c.postJSON("/.mfa/register/phone", map[string]string{"action": "confirm", "code": code, "csrf_token": csrf})
	if v := r.json(t); r.StatusCode != http.StatusOK || v["destination"] != "+1*******77" {
		t.Fatalf("confirm: status %d: %v, want the number that received the code", r.StatusCode, v)
	}
	if _, v := admin(t, http.MethodGet, "/mfa/users/alice", ""); v.(map[string]any)["registered_phone"] != received {
		t.Fatalf("registered: %v, want %s, which received the code", v.(map[string]any)["registered_phone"], received)
	}

	// The next sign-in text goes to the number on file.
	next := smsClient(t, "alice")
	signInBySMS(t, next, tw, 2, received)
	for i, m := range tw.Messages() {
		if m.To == never {
			t.Errorf("text %d went to %s, which never proved possession", i+1, never)
		}
	}
}
