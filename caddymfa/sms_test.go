package caddymfa

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
)

// smsEnv is the test handler with SMS through a local server that speaks
// Twilio's Messages API; alice has an email address and a US number, erin
// only a Swedish number.
func smsEnv(t *testing.T, modify ...func(*Handler)) (*env, *twiliotest.Server) {
	t.Helper()
	tw := twiliotest.NewServer(t)
	h, outbox := testConfig(t)
	h.Users = append(h.Users,
		UserEntry{Name: "erin", Phone: "+46 70 123 45 67"},
		UserEntry{Name: "frank", Phone: "+1 201 555 0199"},
	)
	h.Users[0].Phone = "+12015550123" // alice
	provider, _ := json.Marshal(map[string]any{
		"provider": "twilio", "account_sid": twiliotest.AccountSID, "auth_token": twiliotest.AuthToken,
		"from": "+12015550100", "api_url": tw.URL,
	})
	h.SMS = &sms.Config{
		ProviderRaw: provider,
		Messages:    map[string]string{"sv": "Din kod: %s"},
		Limits: authenticators.Limits{Throttle: &authenticators.Throttle{
			PerHour: -1, Per5m: -1, PerIPPerHour: -1, PerUserPerHour: -1, PerDestinationPerHour: -1, Cooldown: -1,
		}},
	}
	for _, m := range modify {
		m(h)
	}
	return newEnv(t, h, outbox), tw
}

var smsCode = regexp.MustCompile(`\b\d{6}\b`)

// lastText is the code in the newest text message, and its recipient.
func lastText(t *testing.T, tw *twiliotest.Server) (code, to string) {
	t.Helper()
	msgs := tw.Messages()
	if len(msgs) == 0 {
		t.Fatal("no text message was sent")
	}
	m := msgs[len(msgs)-1]
	return smsCode.FindString(m.Body), m.To
}

func TestSMSSignIn(t *testing.T) {
	e, tw := smsEnv(t)
	b := e.browser("alice")
	st := b.state()
	if got := strs(st["methods"]); !slices.Equal(got, []string{"email", "sms"}) {
		t.Fatalf("methods %v", got)
	}
	if d := st["destinations"].(map[string]any); d["sms"] != "+1*******23" || d["email"] != "a***@e***.com" {
		t.Errorf("destinations %v", d)
	}
	resp := b.postJSON("/send", map[string]string{"method": "sms", "to": "+12015550666"})
	v := decodeJSON(t, resp)
	if resp.StatusCode != 200 || v["step"] != stepVerify || v["method"] != "sms" || v["destination"] != "+1*******23" || v["expires_in"] != 60.0 {
		t.Fatalf("send: %d %v", resp.StatusCode, v)
	}
	code, to := lastText(t, tw)
	if to != "+12015550123" || len(tw.Messages()) != 1 {
		t.Fatalf("the code went to %s (%d messages), want only the number on file", to, len(tw.Messages()))
	}
	if resp := b.postJSON("/verify", map[string]string{"method": "email", "code": code}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("an SMS code verified as email: %d", resp.StatusCode)
	}
	if resp := b.postJSON("/verify", map[string]string{"method": "sms", "code": code}); resp.StatusCode != 200 {
		t.Fatalf("verify: %d", resp.StatusCode)
	}
	if b.do(request{target: "/app"}).StatusCode != 200 || e.replVals[len(e.replVals)-1]["mfa.method"] != "sms" {
		t.Error("no SMS session")
	}
	// Next time, SMS comes first.
	if got := strs(e.browser("alice").state()["methods"]); !slices.Equal(got, []string{"sms", "email"}) {
		t.Errorf("after an SMS sign-in: methods %v", got)
	}

	// Localized text.
	sv := e.browser("alice")
	sv.do(request{target: "/.mfa/"}).Body.Close()
	token := sv.state()["csrf_token"].(string)
	sv.do(request{method: http.MethodPost, target: "/.mfa/send", json: map[string]string{"method": "sms", "csrf_token": token}, header: http.Header{"Accept-Language": {"sv-SE,sv;q=0.9"}}}).Body.Close()
	if msgs := tw.Messages(); !regexp.MustCompile(`^Din kod: \d{6}$`).MatchString(msgs[len(msgs)-1].Body) {
		t.Errorf("Swedish text: %q", msgs[len(msgs)-1].Body)
	}
}

// SECURITY.md I38 and I39 for SMS: a number outside allowed_countries is
// never texted, and a country cap stops SMS pumping.
func TestSMSCountries(t *testing.T) {
	e, tw := smsEnv(t, func(h *Handler) {
		h.SMS.AllowedCountries = []string{"US"}
		h.SMS.PerCountryPerHour = 2
	})
	// erin's Swedish number is not allowed: no SMS method, no text.
	erin := e.browser("erin")
	if st := erin.state(); st["error"] != errCodeNoMethod {
		t.Errorf("erin: %v", st)
	}
	if resp := erin.postJSON("/send", map[string]string{"method": "sms"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("send to a number outside allowed_countries: %d", resp.StatusCode)
	}
	// Two texts to the US this hour, then the cap.
	for i, user := range []string{"alice", "frank"} {
		if resp := e.browser(user).postJSON("/send", map[string]string{"method": "sms"}); resp.StatusCode != 200 {
			t.Fatalf("send %d: %d", i, resp.StatusCode)
		}
	}
	resp := e.browser("alice").postJSON("/send", map[string]string{"method": "sms"})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third text to the US: %d, want 429 with Retry-After", resp.StatusCode)
	}
	if n := len(tw.Messages()); n != 2 {
		t.Errorf("%d texts sent, want 2", n)
	}
	e.clock.add(time.Hour)
	if resp := e.browser("alice").postJSON("/send", map[string]string{"method": "sms"}); resp.StatusCode != 200 {
		t.Errorf("next hour: %d", resp.StatusCode)
	}
}

// SECURITY.md I41 for SMS: a provider that refuses gives a clear error,
// an entry in the delivery log, and a challenge that takes no code.
func TestSMSProviderFailure(t *testing.T) {
	for _, tt := range []struct {
		name string
		fail func(*twiliotest.Server)
	}{
		{"4xx", func(s *twiliotest.Server) { s.Fail(400, 21211, "The 'To' number is not a valid phone number.", -1) }},
		{"5xx", func(s *twiliotest.Server) { s.Fail(503, 0, "Service Unavailable", -1) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, tw := smsEnv(t, func(h *Handler) { h.SMS.Delivery = &delivery.Config{Retries: 1} })
			tt.fail(tw)
			b := e.browser("alice")
			resp := b.postJSON("/send", map[string]string{"method": "sms"})
			v := decodeJSON(t, resp)
			if resp.StatusCode != http.StatusBadGateway || v["error"] != errCodeDelivery {
				t.Fatalf("send: %d %v", resp.StatusCode, v)
			}
			entries, err := e.h.dlog.entries(t.Context(), 10)
			if err != nil || len(entries) == 0 || entries[0].OK || entries[0].Method != "sms" || entries[0].To != "+1*******23" {
				t.Fatalf("delivery log: %v %+v", err, entries)
			}
			st := b.state()
			if st["step"] == stepVerify {
				t.Errorf("an undelivered challenge still asks for a code: %v", st)
			}
			if resp := b.postJSON("/verify", map[string]string{"method": "sms", "code": "123456"}); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("verify on an undelivered challenge: %d", resp.StatusCode)
			}
		})
	}
}

// SECURITY.md H37 with SMS (the seed's error.no-user-or-phonenumber): in
// standalone mode a user with no phone on file, a disabled user and an
// unknown name get the same answer as a user with a phone.
func TestSMSStandaloneDoesNotRevealUsers(t *testing.T) {
	e, tw := smsEnv(t, func(h *Handler) {
		h.User = new(string)
		h.Email = nil
		h.Users[2] = UserEntry{Name: "carol", Email: "carol@example.com"} // no phone on file
	})
	shape := func(user string) string {
		b := e.browser("")
		resp := b.postJSON("/identify", map[string]string{"username": user})
		st := decodeJSON(t, resp)
		delete(st, "csrf_token")
		delete(st, "user")
		var names []string
		for _, c := range resp.Cookies() {
			names = append(names, c.Name)
		}
		return fmt.Sprint(resp.StatusCode, st, names)
	}
	want := shape("alice")
	for _, u := range []string{"carol", "dave", "nobody", "bob"} {
		if got := shape(u); got != want {
			t.Errorf("%s: %s\nalice: %s", u, got, want)
		}
	}
	e.h.pending.Wait()
	waitFor(t, func() bool { return len(tw.Messages()) == 1 })
	if _, to := lastText(t, tw); to != "+12015550123" {
		t.Errorf("text went to %s", to)
	}
}
