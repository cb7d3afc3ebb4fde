package integration

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// emailCodeAfter waits for a sign-in code mailed after the first seen
// messages (notices may arrive between them) and returns it.
func emailCodeAfter(t *testing.T, srv *smtptest.Server, seen int) string {
	t.Helper()
	var code string
	waitFor(t, 15*time.Second, "a mailed sign-in code", func() bool {
		msgs := srv.Messages()
		for i := seen; i < len(msgs); i++ {
			if m := parseMail(t, msgs[i]); strings.Contains(m.header.Get("Subject"), "sign-in code") {
				code = m.code(t)
				return true
			}
		}
		return false
	})
	return code
}

// signInByCode signs c in with an emailed code, asking to remember the
// device when remember is set.
func signInByCode(t *testing.T, c *client, srv *smtptest.Server, remember bool) *response {
	t.Helper()
	seen := len(srv.Messages())
	if r := c.postJSON("/.mfa/send", map[string]string{"method": "email"}); r.StatusCode != http.StatusOK {
		t.Fatalf("send: status %d: %s", r.StatusCode, r.body)
	}
	fields := map[string]string{"method": "email", "code": emailCodeAfter(t, srv, seen)}
	if remember {
		fields["remember"] = "true"
	}
	r := c.postJSON("/.mfa/verify", fields)
	if r.StatusCode != http.StatusOK || r.json(t)["step"] != "done" {
		t.Fatalf("verify: status %d: %s", r.StatusCode, r.body)
	}
	return r
}

// TestExemptionIsNotAFactor (SECURITY.md N61): a session made by a policy
// exemption, a known IP or a remembered device, passed no factor. Through
// a real Caddy it is refused at enrollment of an app, at the registration
// of a phone number or an address, and at every change of the app
// (replace, remove, new recovery codes), even with a valid code of the
// app; a session made with an emailed code is accepted.
func TestExemptionIsNotAFactor(t *testing.T) {
	for _, tc := range []struct{ name, policy string }{
		{"known_ip", "policy new_ip"},
		{"remembered_device", "remember_device 30d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tw, srv := twiliotest.NewServer(t), newSMTP(t)
			startCaddy(t, smsSite{
				users: "alice email alice@example.com phone +12015550123",
				sms: relaxedThrottle + `
			registration {
				require email
			}`,
				mfa: `email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
			registration {
				require sms
			}
		}
		totp {
			issuer Example
		}
		` + tc.policy,
			}.caddyfile(t, tw, newUpstream(t)))

			// exempt returns a browser whose session comes from the
			// exemption under test, after a sign-in by email that makes
			// the place known or the device remembered.
			exempt := func() *client {
				t.Helper()
				b := smsClient(t, "alice")
				signInByCode(t, b, srv, tc.name == "remembered_device")
				c := smsClient(t, "alice")
				if tc.name == "remembered_device" {
					for _, ck := range b.hc.Jar.Cookies(mustParse(t, siteURL)) {
						if strings.HasPrefix(ck.Name, "mfa_device-") {
							c.header.Set("Cookie", ck.Name+"="+ck.Value)
						}
					}
				}
				if r := c.get("/", "text/html"); r.StatusCode != http.StatusOK {
					t.Fatalf("the exemption did not let the browser through: %d", r.StatusCode)
				}
				if st := c.state(); st["step"] != "done" || st["method"] != tc.name {
					t.Fatalf("the browser's session: %v, want one made by %s", st, tc.name)
				}
				return c
			}
			refusedEverywhere := func(c *client, secret string) {
				t.Helper()
				texts := tw.Requests()
				csrf, _ := c.state()["csrf_token"].(string)
				v := getJSON(t, c, "/.mfa/enroll/totp", http.StatusForbidden)
				if v["step"] != "confirm_required" || v["error"] != "not_allowed" {
					t.Errorf("enrollment page: %v, want confirm_required", v)
				}
				posts := []map[string]string{{"action": "confirm", "code": "123456"}}
				if secret != "" {
					code := totpref.Code(secret, time.Now(), 0)
					posts = append(posts,
						map[string]string{"action": "confirm", "code": "123456", "current_code": code},
						map[string]string{"action": "remove", "current_code": code},
						map[string]string{"action": "recovery_codes", "current_code": code})
				}
				for _, f := range posts {
					f["csrf_token"] = csrf
					if r := c.postJSON("/.mfa/enroll/totp", f); r.StatusCode != http.StatusForbidden || r.json(t)["error"] != "not_allowed" {
						t.Errorf("POST enroll/totp %s: status %d: %s", f["action"], r.StatusCode, r.body)
					}
				}
				for kind, address := range map[string]string{"phone": "+12015550177", "email": "mallory@example.com"} {
					if v := getJSON(t, c, "/.mfa/register/"+kind, http.StatusForbidden); v["step"] != "register_required" {
						t.Errorf("%s registration page: %v, want register_required", kind, v)
					}
					r := c.postJSON("/.mfa/register/"+kind, map[string]string{"action": "send", "address": address, "csrf_token": csrf})
					if r.StatusCode != http.StatusForbidden {
						t.Errorf("POST %s registration: status %d: %s", kind, r.StatusCode, r.body)
					}
				}
				if n := tw.Requests(); n != texts {
					t.Errorf("the refused changes sent %d texts", n-texts)
				}
			}

			// No app yet: the exemption can neither add one nor
			// register an address.
			refusedEverywhere(exempt(), "")

			// A session made with an emailed code can.
			byEmail := smsClient(t, "alice")
			signInByCode(t, byEmail, srv, false)
			secret := scan(t, enrollPage(t, byEmail, "/.mfa/enroll/totp", nil), "Example", "alice")
			confirmEnroll(t, byEmail, enrollCSRF(t, byEmail), totpref.Code(secret, time.Now(), -1), "", "/")
			v := getJSON(t, byEmail, "/.mfa/register/phone", http.StatusOK)
			r := byEmail.postJSON("/.mfa/register/phone", map[string]string{"action": "send", "address": "+12015550188", "csrf_token": v["csrf_token"].(string)})
			if r.StatusCode != http.StatusOK || r.json(t)["step"] != "register_verify" {
				t.Fatalf("registration from an emailed code's session: status %d: %s", r.StatusCode, r.body)
			}

			// With an app: the exemption cannot change it, even with a
			// valid code of the app.
			refusedEverywhere(exempt(), secret)
			_, u := admin(t, http.MethodGet, "/mfa/users/alice", "")
			if user := u.(map[string]any); user["totp"] == nil || user["recovery_codes_left"] != float64(10) {
				t.Errorf("the app changed: %v", user)
			}

			// The refusal offers a code; passing one comes back to the
			// app's page, where the change is then accepted.
			c := exempt()
			if v := getJSON(t, c, "/.mfa/enroll/totp", http.StatusForbidden); v["step"] != "confirm_required" || len(strs(v["methods"])) == 0 {
				t.Fatalf("enrollment page: %v", v)
			}
			if st := c.state(); st["step"] != "choose" {
				t.Fatalf("the sign-in page while confirming: %v, want the choose step", st)
			}
			seen := len(srv.Messages())
			if r := c.postJSON("/.mfa/send", map[string]string{"method": "email"}); r.StatusCode != http.StatusOK {
				t.Fatalf("send: %d %s", r.StatusCode, r.body)
			}
			r = c.postJSON("/.mfa/verify", map[string]string{"method": "email", "code": emailCodeAfter(t, srv, seen)})
			if v := r.json(t); r.StatusCode != http.StatusOK || v["redirect"] != "/.mfa/enroll/totp?return=%2F" {
				t.Fatalf("verify: %d %v, want the way back to the app's page", r.StatusCode, v)
			}
			v = getJSON(t, c, "/.mfa/enroll/totp", http.StatusOK)
			r = c.postJSON("/.mfa/enroll/totp", map[string]string{"action": "recovery_codes", "current_code": totpref.Code(secret, time.Now(), 0), "csrf_token": v["csrf_token"].(string)})
			if v := r.json(t); r.StatusCode != http.StatusOK || v["step"] != "recovery_codes" {
				t.Errorf("new recovery codes from an emailed code's session: %d %v", r.StatusCode, v)
			}
		})
	}
}

func mustParse(t *testing.T, raw string) *url.URL {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
