package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// smsUsers are the basic_auth users of smsSite, all with alicePassword.
var smsUsers = []string{"alice", "bob", "carol", "erin"}

// smsSite is a second-factor site behind basic_auth whose codes go by text
// message through the twilio provider to a local fake of Twilio's Messages
// API.
type smsSite struct {
	users   string // the lines of the users block
	sms     string // more lines of the sms block
	mfa     string // more lines of the mfa block (email, totp...)
	timeout string // the provider's timeout; default 5s
	apiURL  string // the provider's api_url; default the fake's
}

func (s smsSite) caddyfile(t *testing.T, tw *twiliotest.Server, up *upstream) string {
	t.Helper()
	hash := bcryptHash(t, alicePassword)
	timeout, apiURL := s.timeout, s.apiURL
	if timeout == "" {
		timeout = "5s"
	}
	if apiURL == "" {
		apiURL = tw.URL
	}
	var b strings.Builder
	b.WriteString(globalOptions(""))
	b.WriteString(siteURL + " {\n\tbasic_auth {\n")
	for _, u := range smsUsers {
		b.WriteString("\t\t" + u + " " + hash + "\n")
	}
	b.WriteString(`	}
	mfa {
		base_url ` + siteURL + `
		storage badger ` + t.TempDir() + `
		secret_key ` + testSecret + `
		users {
			` + s.users + `
		}
		sms {
			provider twilio {
				account_sid ` + twiliotest.AccountSID + `
				auth_token ` + twiliotest.AuthToken + `
				from +12015550100
				api_url ` + apiURL + `
				timeout ` + timeout + `
			}
			` + s.sms + `
		}
		` + s.mfa + `
	}
	reverse_proxy ` + up.addr() + ` {
		header_up X-Mfa-User {http.auth.mfa.user}
		header_up X-Mfa-Method {http.auth.mfa.method}
	}
}
`)
	return b.String()
}

// smsClient is a browser of user, signed in to basic_auth.
func smsClient(t *testing.T, user string) *client {
	return newClient(t).withBasicAuth(user, alicePassword)
}

// waitText waits for the n-th text (1-based) the fake Twilio server
// accepted and returns it.
func waitText(t *testing.T, tw *twiliotest.Server, n int) twiliotest.Message {
	t.Helper()
	var msgs []twiliotest.Message
	waitFor(t, 15*time.Second, fmt.Sprintf("the Twilio server to accept %d texts", n), func() bool {
		msgs = tw.Messages()
		return len(msgs) >= n
	})
	return msgs[n-1]
}

// textCode returns the one-time code of a text.
func textCode(t *testing.T, m twiliotest.Message) string {
	t.Helper()
	code := codePattern.FindString(m.Body)
	if code == "" {
		t.Fatalf("no code in the text %q", m.Body)
	}
	return code
}

// sendText asks for a code by text message (JSON) and returns the code
// of the n-th text the fake Twilio server accepted, checking it went to
// the number to.
func sendText(t *testing.T, c *client, tw *twiliotest.Server, n int, to string) string {
	t.Helper()
	r := c.postJSON("/.mfa/send", map[string]string{"method": "sms"})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("send: status %d: %s", r.StatusCode, r.body)
	}
	m := waitText(t, tw, n)
	if m.To != to {
		t.Fatalf("text %d went to %s, want %s", n, m.To, to)
	}
	return textCode(t, m)
}

// signInBySMS runs a sign-in by text message to the end and checks what
// the upstream sees.
func signInBySMS(t *testing.T, c *client, tw *twiliotest.Server, n int, to string) {
	t.Helper()
	code := sendText(t, c, tw, n, to)
	r := c.postJSON("/.mfa/verify", map[string]string{"method": "sms", "code": code})
	if r.StatusCode != http.StatusOK || r.json(t)["step"] != "done" {
		t.Fatalf("verify: status %d: %s", r.StatusCode, r.body)
	}
	h, ok := protected(t, c, "/")
	if !ok || h.Get("X-Mfa-Method") != "sms" {
		t.Fatalf("after the texted code: upstream reached %v, X-Mfa-Method %q", ok, h.Get("X-Mfa-Method"))
	}
}

// strs converts a JSON array of strings.
func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, e := range list {
		s, _ := e.(string)
		out = append(out, s)
	}
	return out
}

// deliveryLog reads the delivery log through the admin API, newest
// first, and returns it with its JSON.
func deliveryLog(t *testing.T, query string) ([]map[string]any, string) {
	t.Helper()
	status, v := admin(t, http.MethodGet, "/mfa/log?"+query, "")
	raw, _ := json.Marshal(v)
	if status != http.StatusOK {
		t.Fatalf("GET /mfa/log?%s: %d %s", query, status, raw)
	}
	var entries []map[string]any
	if err := json.Unmarshal(raw, &entries); err != nil {
		t.Fatalf("delivery log: %v: %s", err, raw)
	}
	return entries, string(raw)
}

// TestSMSLoginOverTwilioAPI signs alice in with the code that a local
// server speaking Twilio's Messages API received: the provider posted the
// form to the account's Messages resource with basic authentication (the
// fake accepts nothing else), To is the number on file in E.164 form,
// From the configured sender, Body the configured text with the code.
// The upstream learns the user and the method; the delivery log has the
// attempt with the number masked and no code.
func TestSMSLoginOverTwilioAPI(t *testing.T) {
	tw := twiliotest.NewServer(t)
	up := newUpstream(t)
	startCaddy(t, smsSite{
		users: `alice email alice@example.com phone "+1 (201) 555-0123"`,
		sms:   `message "Your Example code is %s. It expires in a minute."`,
		mfa: `email {
			outbox ` + t.TempDir() + `
		}`,
	}.caddyfile(t, tw, up))

	c := smsClient(t, "alice")
	const target = "/reports/q3?format=pdf"
	r := c.get(target, "text/html")
	loc := r.Header.Get("Location")
	if r.StatusCode != http.StatusFound || loc != "/.mfa/?return="+url.QueryEscape(target) {
		t.Fatalf("GET %s: status %d, Location %q", target, r.StatusCode, loc)
	}
	st := c.get(loc, "application/json").json(t)
	if st["step"] != "choose" || !slices.Equal(strs(st["methods"]), []string{"email", "sms"}) {
		t.Fatalf("choose step: %v", st)
	}
	if d, _ := st["destinations"].(map[string]any); d["sms"] != "+1*******23" || d["email"] != "a***@e***.com" {
		t.Errorf("destinations %v, want the masked number and address", st["destinations"])
	}

	r = c.postJSON("/.mfa/send", map[string]string{"method": "sms"})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("send: status %d: %s", r.StatusCode, r.body)
	}
	v := r.json(t)
	if v["step"] != "verify" || v["method"] != "sms" || v["destination"] != "+1*******23" || v["expires_in"] != 60.0 || v["attempts_left"] != 3.0 {
		t.Fatalf("send answered %v, want the verify step for +1*******23, 60s, 3 attempts", v)
	}
	msgs := tw.Messages()
	if len(msgs) != 1 || tw.Requests() != 1 {
		t.Fatalf("the Twilio server got %d requests and accepted %d texts, want 1 and 1", tw.Requests(), len(msgs))
	}
	m := msgs[0]
	code := textCode(t, m)
	if m.To != "+12015550123" || m.From != "+12015550100" || m.MessagingServiceSid != "" || !strings.HasPrefix(m.SID, "SM") {
		t.Errorf("text To %q, From %q, MessagingServiceSid %q, SID %q", m.To, m.From, m.MessagingServiceSid, m.SID)
	}
	if want := "Your Example code is " + code + ". It expires in a minute."; m.Body != want {
		t.Errorf("Body %q, want %q", m.Body, want)
	}

	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	r = c.postJSON("/.mfa/verify", map[string]string{"method": "sms", "code": wrong})
	if v := r.json(t); r.StatusCode != http.StatusUnauthorized || v["error"] != "invalid_code" || v["attempts_left"] != 2.0 {
		t.Fatalf("wrong code: status %d: %v", r.StatusCode, v)
	}
	r = c.postJSON("/.mfa/verify", map[string]string{"method": "sms", "code": code})
	if v := r.json(t); r.StatusCode != http.StatusOK || v["step"] != "done" || v["method"] != "sms" || v["redirect"] != target {
		t.Fatalf("verify: status %d: %v", r.StatusCode, v)
	}
	h, ok := protected(t, c, target)
	if !ok || h.Get("X-Mfa-User") != "alice" || h.Get("X-Mfa-Method") != "sms" {
		t.Fatalf("after the texted code: upstream reached %v, X-Mfa-User %q, X-Mfa-Method %q", ok, h.Get("X-Mfa-User"), h.Get("X-Mfa-Method"))
	}
	if got := up.last(t).URL.RequestURI(); got != target {
		t.Errorf("upstream saw %s, want %s", got, target)
	}

	// The delivery log has the attempt, masked, without the code.
	entries, raw := deliveryLog(t, "method=sms")
	if len(entries) != 1 || entries[0]["ok"] != true || entries[0]["to"] != "+1*******23" || entries[0]["user"] != "alice" {
		t.Errorf("delivery log: %s", raw)
	}
	if strings.Contains(raw, "2015550123") || strings.Contains(raw, code) {
		t.Errorf("the delivery log shows the number or the code: %s", raw)
	}

	// The next sign-in offers SMS first.
	if got := strs(smsClient(t, "alice").state()["methods"]); !slices.Equal(got, []string{"sms", "email"}) {
		t.Errorf("after an SMS sign-in: methods %v, want sms first", got)
	}
}

// TestSMSProviderErrors (SECURITY.md I41): when Twilio refuses the text
// (4xx), fails (5xx), never answers or cannot be reached, POST /send
// answers 502 delivery_failed with a message for the user within the
// delivery wait, the delivery log holds the provider's error with the
// number masked, and the challenge that was never delivered accepts no
// code. Refusals are not retried, the rest are. Once the provider answers
// again, a new send in the same browser signs in.
func TestSMSProviderErrors(t *testing.T) {
	const wait = 5 * time.Second
	cases := []struct {
		name     string
		fail     func(tw *twiliotest.Server)
		down     bool   // api_url points where nothing listens
		attempts int    // requests the fake receives
		entries  int    // failed attempts in the delivery log
		logged   string // in the error of the last one
	}{
		{name: "4xx_invalid_number", attempts: 1, entries: 1, logged: "HTTP 400 Bad Request, error 21211: The 'To' number +1*******23 is not a valid phone number.",
			fail: func(tw *twiliotest.Server) {
				tw.Fail(http.StatusBadRequest, 21211, "The 'To' number +12015550123 is not a valid phone number.", 1)
			}},
		{name: "4xx_wrong_credentials", attempts: 1, entries: 1, logged: "HTTP 401 Unauthorized, error 20003",
			fail: func(tw *twiliotest.Server) { tw.Fail(http.StatusUnauthorized, 20003, "Authenticate", 1) }},
		{name: "5xx", attempts: 2, entries: 2, logged: "HTTP 503 Service Unavailable, error 20503",
			fail: func(tw *twiliotest.Server) { tw.Fail(http.StatusServiceUnavailable, 20503, "Service Unavailable", 2) }},
		{name: "timeout", attempts: 2, entries: 2, logged: "no answer within 1s",
			fail: func(tw *twiliotest.Server) { tw.Hang(2) }},
		{name: "connection_refused", down: true, entries: 2, logged: "connection refused"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tw := twiliotest.NewServer(t)
			s := smsSite{
				users:   "alice phone +12015550123",
				timeout: "1s",
				sms: relaxedThrottle + `
			delivery {
				retries 1
				wait ` + wait.String() + `
			}`,
			}
			if tc.down {
				s.apiURL = "http://" + smtptest.ClosedAddr(t)
			} else {
				tc.fail(tw)
			}
			startCaddy(t, s.caddyfile(t, tw, newUpstream(t)))

			c := smsClient(t, "alice")
			start := time.Now()
			r := c.postJSON("/.mfa/send", map[string]string{"method": "sms"})
			elapsed := time.Since(start)
			if r.StatusCode != http.StatusBadGateway {
				t.Fatalf("send: status %d after %s, want 502: %s", r.StatusCode, elapsed, r.body)
			}
			v := r.json(t)
			if msg, _ := v["message"].(string); v["error"] != "delivery_failed" || !strings.Contains(msg, "could not be delivered") {
				t.Errorf("send answered %v, want delivery_failed and a message saying the code was not sent", v)
			}
			if elapsed > wait+2*time.Second {
				t.Errorf("send took %s, want at most the delivery wait %s and a margin", elapsed, wait)
			}
			if got := tw.Requests(); got != tc.attempts {
				t.Errorf("the Twilio server got %d requests, want %d", got, tc.attempts)
			}
			if n := len(tw.Messages()); n != 0 {
				t.Errorf("the Twilio server accepted %d texts, want 0", n)
			}

			// The page says so, and the challenge accepts no code.
			if st := c.state(); st["error"] != "delivery_failed" || st["step"] == "verify" {
				t.Errorf("the sign-in page shows %v, want the delivery failure and no verify step", st)
			}
			for _, code := range []string{"000000", "123456", "999999"} {
				if r := c.postJSON("/.mfa/verify", map[string]string{"method": "sms", "code": code}); r.StatusCode != http.StatusUnauthorized {
					t.Fatalf("verify %s on an undelivered challenge: status %d, want 401: %s", code, r.StatusCode, r.body)
				}
			}
			if _, ok := protected(t, c, "/"); ok {
				t.Fatal("the upstream was reached after a failed delivery")
			}

			// The delivery log: each attempt, the last one final, with the
			// provider's error and the number masked.
			entries, raw := deliveryLog(t, "method=sms&failed=true")
			if len(entries) != tc.entries {
				t.Fatalf("delivery log: %d failed entries, want %d: %s", len(entries), tc.entries, raw)
			}
			last := entries[0]
			if errText, _ := last["error"].(string); last["permanent"] != true || last["to"] != "+1*******23" || last["user"] != "alice" || !strings.Contains(errText, tc.logged) {
				t.Errorf("last delivery log entry %v, want a final failure for +1*******23 with %q", last, tc.logged)
			}
			if strings.Contains(raw, "2015550123") || strings.Contains(raw, twiliotest.AuthToken) {
				t.Errorf("the delivery log shows the number or the auth token: %s", raw)
			}

			if tc.down {
				return
			}
			// The provider answers again: sending anew in the same browser
			// starts a fresh challenge, and its code signs in.
			signInBySMS(t, c, tw, 1, "+12015550123")
		})
	}
}

// TestSMSCodeGoesOnlyToNumberOnFile (SECURITY.md I38): a number in the
// request, in any field or in the query, in JSON or in a form, is
// ignored; the code goes to the number on file. A user with no number on
// file gets no text at all.
func TestSMSCodeGoesOnlyToNumberOnFile(t *testing.T) {
	tw := twiliotest.NewServer(t)
	startCaddy(t, smsSite{
		users: "alice phone +12015550123\n\t\t\tbob email bob@example.com", // bob: no number, and no email block
		sms:   relaxedThrottle,
	}.caddyfile(t, tw, newUpstream(t)))

	const other = "+12015550199"
	fields := func() map[string]string {
		return map[string]string{"method": "sms", "to": other, "To": other, "phone": other, "address": other, "destination": other, "number": other}
	}
	c := smsClient(t, "alice")
	r := c.postJSON("/.mfa/send?to=%2B12015550199&phone=%2B12015550199&address=%2B12015550199", fields())
	if v := r.json(t); r.StatusCode != http.StatusOK || v["destination"] != "+1*******23" {
		t.Fatalf("send with another number in the request: status %d: %v", r.StatusCode, v)
	}
	r = c.postJSON("/.mfa/resend", fields())
	if r.StatusCode != http.StatusOK {
		t.Fatalf("resend: status %d: %s", r.StatusCode, r.body)
	}
	form := url.Values{"csrf_token": {c.state()["csrf_token"].(string)}}
	for k, v := range fields() {
		form.Set(k, v)
	}
	if r := c.postForm("/.mfa/send", form); r.StatusCode != http.StatusSeeOther {
		t.Fatalf("form send: status %d: %s", r.StatusCode, r.body)
	}
	msgs := tw.Messages()
	if len(msgs) != 3 {
		t.Fatalf("the Twilio server accepted %d texts, want 3", len(msgs))
	}
	for i, m := range msgs {
		if m.To != "+12015550123" {
			t.Errorf("text %d went to %s, want only the number on file", i+1, m.To)
		}
	}
	r = c.postJSON("/.mfa/verify", map[string]string{"method": "sms", "code": textCode(t, msgs[2]), "to": other})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("verify with the last code: status %d: %s", r.StatusCode, r.body)
	}

	// bob has no number (his address is for email, which is not
	// configured): nothing is offered, and naming one does not help.
	bob := smsClient(t, "bob")
	if st := bob.state(); st["error"] != "no_method" || len(strs(st["methods"])) != 0 {
		t.Errorf("bob, with no number on file: %v", st)
	}
	if r := bob.postJSON("/.mfa/send", fields()); r.StatusCode != http.StatusForbidden {
		t.Errorf("send for bob with a number in the request: status %d, want 403: %s", r.StatusCode, r.body)
	}
	if n := tw.Requests(); n != 3 {
		t.Errorf("the Twilio server got %d requests, want 3", n)
	}
}

// TestSMSSendCaps (SECURITY.md I39): the per-user cap, the per-country
// cap against SMS pumping and the per-number cooldown answer 429 with
// Retry-After, and no text is sent beyond them; other users, countries
// and numbers are not affected.
func TestSMSSendCaps(t *testing.T) {
	throttle := func(perUser, cooldown string) string {
		return `throttle {
				per_hour 1000
				per_5m 1000
				per_ip_per_hour 1000
				per_user_per_hour ` + perUser + `
				per_destination_per_hour 1000
				cooldown ` + cooldown + `
			}`
	}
	const users = `alice phone +12015550123
			bob phone +12015550199
			carol phone +12015550177
			erin phone "+46 70 123 45 67"`
	cases := []struct {
		name     string
		sms      string
		sends    []string // users, in order; * must be refused, = must reuse the live code
		maxRetry int
	}{
		{"per_user_per_hour", throttle("2", "off") + "\n\t\t\tper_country_per_hour off", []string{"alice", "alice", "*alice", "bob"}, 3600},
		{"per_country_per_hour", throttle("off", "off") + "\n\t\t\tper_country_per_hour 2", []string{"alice", "bob", "*carol", "erin"}, 3600},
		{"cooldown", throttle("off", "1m") + "\n\t\t\tper_country_per_hour off", []string{"alice", "=alice", "bob"}, 60},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tw := twiliotest.NewServer(t)
			startCaddy(t, smsSite{users: users, sms: tc.sms}.caddyfile(t, tw, newUpstream(t)))
			sent := 0
			for i, user := range tc.sends {
				user, refuse := strings.CutPrefix(user, "*")
				user, reuse := strings.CutPrefix(user, "=")
				c := smsClient(t, user)
				r := c.postJSON("/.mfa/send", map[string]string{"method": "sms"})
				if reuse {
					// Signing in again within the cooldown reuses the live
					// code (SECURITY.md L58); a resend from that flow is
					// still held to the cooldown.
					if r.StatusCode != http.StatusOK || r.json(t)["sent_at"] == nil {
						t.Fatalf("send %d for %s: status %d, want 200 with the live code's sent_at: %s", i+1, user, r.StatusCode, r.body)
					}
					r = c.postJSON("/.mfa/send", map[string]string{"method": "sms"})
					refuse = true
				}
				if !refuse {
					if r.StatusCode != http.StatusOK {
						t.Fatalf("send %d for %s: status %d, want 200: %s", i+1, user, r.StatusCode, r.body)
					}
					sent++
					continue
				}
				if r.StatusCode != http.StatusTooManyRequests || r.json(t)["error"] != "throttled" {
					t.Fatalf("send %d for %s: status %d, want 429 throttled: %s", i+1, user, r.StatusCode, r.body)
				}
				s, err := strconv.Atoi(r.Header.Get("Retry-After"))
				if err != nil || s < 1 || s > tc.maxRetry {
					t.Errorf("Retry-After %q, want 1..%d seconds", r.Header.Get("Retry-After"), tc.maxRetry)
				}
			}
			if n := tw.Requests(); n != sent {
				t.Errorf("the Twilio server got %d requests, want %d", n, sent)
			}
		})
	}
}

// TestSMSNumberInjection (SECURITY.md I40): line breaks, a second number
// or form syntax in a phone number never reach the provider. A users
// block with such a number does not load (the running config stays); a
// registration with such an address answers 400 and sends nothing; what
// reaches Twilio is one To field with one E.164 number.
func TestSMSNumberInjection(t *testing.T) {
	bad := []string{
		"+12015550123\r\nTo: +12015550199",
		"+12015550123\n+12015550199",
		"+12015550123,+12015550199",
		"+12015550123 +12015550199",
		"+12015550123;+12015550199",
		"+12015550123&To=%2B12015550199",
		"+12015550123%0d%0aTo:+12015550199",
		"+12015550123\x00",
		"+1 201 555 0123 ext. 9",
		"12015550123",
		"+15551234567",
		"+1201555012312015550199",
	}

	t.Run("users_phone_at_load", func(t *testing.T) {
		tw := twiliotest.NewServer(t)
		up := newUpstream(t)
		good := smsSite{users: "alice phone +12015550123", sms: relaxedThrottle}.caddyfile(t, tw, up)
		startCaddy(t, good)
		for _, number := range bad {
			// Line breaks and NUL go into the quoted token as they are.
			err := loadCaddyfile(smsSite{users: `alice phone "` + number + `"`, sms: relaxedThrottle}.caddyfile(t, tw, up))
			if err == nil {
				t.Errorf("a users block with phone %q loaded", number)
				continue
			}
			if !strings.Contains(err.Error(), "phone") {
				t.Errorf("phone %q: the error does not name the phone: %v", number, err)
			}
		}
		if t.Failed() {
			if err := loadCaddyfile(good); err != nil {
				t.Fatal(err)
			}
		}
		// The config that ran before still runs.
		signInBySMS(t, smsClient(t, "alice"), tw, 1, "+12015550123")
		if n := tw.Requests(); n != 1 {
			t.Errorf("the Twilio server got %d requests, want 1", n)
		}
	})

	t.Run("registration_address", func(t *testing.T) {
		tw := twiliotest.NewServer(t)
		srv := newSMTP(t)
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
		}`,
		}.caddyfile(t, tw, newUpstream(t)))
		c := smsClient(t, "alice")
		signIn(t, c, srv, 1)
		page := c.get("/.mfa/register/phone?start=1", "application/json")
		csrf, _ := page.json(t)["csrf_token"].(string)
		if page.StatusCode != http.StatusOK || csrf == "" {
			t.Fatalf("registration page: status %d: %s", page.StatusCode, page.body)
		}
		for _, number := range bad {
			r := c.postJSON("/.mfa/register/phone", map[string]string{"action": "send", "address": number, "csrf_token": csrf})
			if r.StatusCode != http.StatusBadRequest {
				t.Errorf("register %q: status %d, want 400: %s", number, r.StatusCode, r.body)
			}
		}
		if n := tw.Requests(); n != 0 {
			t.Fatalf("the Twilio server got %d requests for bad numbers", n)
		}
		r := c.postJSON("/.mfa/register/phone", map[string]string{"action": "send", "address": "+1 201-555-0177", "csrf_token": csrf})
		if r.StatusCode != http.StatusOK || r.json(t)["step"] != "register_verify" {
			t.Fatalf("register a good number: status %d: %s", r.StatusCode, r.body)
		}
		if m := waitText(t, tw, 1); m.To != "+12015550177" || tw.Requests() != 1 {
			t.Errorf("the code went to %q in %d requests, want +12015550177 in one", m.To, tw.Requests())
		}
	})
}

// TestAdminTestSMS sends test texts with "caddy mfa test-sms": one
// arrives at the Twilio server; one that Twilio refuses makes the command
// fail with Twilio's error; an invalid number never reaches Twilio. The
// delivery log records each, masked.
func TestAdminTestSMS(t *testing.T) {
	tw := twiliotest.NewServer(t)
	startCaddy(t, smsSite{users: "alice phone +12015550123"}.caddyfile(t, tw, newUpstream(t)))

	out, err := mfaCLI(t, "test-sms", "+12015550123")
	if err != nil || !strings.Contains(out, `"ok": true`) || !strings.Contains(out, `"to": "+1*******23"`) {
		t.Fatalf("caddy mfa test-sms: %v: %s", err, out)
	}
	m := waitText(t, tw, 1)
	if m.To != "+12015550123" || m.From != "+12015550100" || m.Body != "Test message from localhost: SMS delivery works." {
		t.Errorf("test text: %+v", m)
	}

	tw.Fail(http.StatusBadRequest, 21211, "The 'To' number +12015550123 is not a valid phone number.", 1)
	out, err = mfaCLI(t, "test-sms", "+12015550123")
	if err == nil || !strings.Contains(err.Error(), "HTTP 502") || !strings.Contains(err.Error(), "21211") {
		t.Fatalf("a refused test text: err %v, output %s; want an error with Twilio's 21211", err, out)
	}
	if strings.Contains(err.Error(), "2015550123") {
		t.Errorf("the error shows the full number: %v", err)
	}

	requests := tw.Requests()
	if _, err := mfaCLI(t, "test-sms", "+15551234567"); err == nil {
		t.Error("a test text to an invalid number did not fail")
	}
	if tw.Requests() != requests {
		t.Error("a test text to an invalid number reached Twilio")
	}

	out, err = mfaCLI(t, "log", "--method", "sms")
	if err != nil {
		t.Fatalf("caddy mfa log: %v: %s", err, out)
	}
	var entries []map[string]any
	if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) != 3 {
		t.Fatalf("log: %v: %s", err, out)
	}
	got := make([]string, len(entries))
	for i, e := range entries {
		got[i] = fmt.Sprintf("%v %v %v", e["user"], e["to"], e["ok"])
	}
	want := []string{"(test) +1*******67 false", "(test) +1*******23 false", "(test) +1*******23 true"}
	if !slices.Equal(got, want) {
		t.Errorf("log entries %q, want %q", got, want)
	}
	if errText, _ := entries[1]["error"].(string); !strings.Contains(errText, "21211") {
		t.Errorf("the log does not hold Twilio's error: %v", entries[1])
	}
	if strings.Contains(out, "2015550123") || strings.Contains(out, "5551234567") {
		t.Errorf("the log shows a full number: %s", out)
	}
}
