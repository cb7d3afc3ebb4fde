package sms

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
)

func TestTwilioSendsOneMessage(t *testing.T) {
	s := twiliotest.NewServer(t)
	t.Setenv("TEST_TWILIO_TOKEN", twiliotest.AuthToken)
	t.Setenv("TEST_TWILIO_SID", twiliotest.AccountSID)
	l := newLogs()
	c := &Config{
		ProviderRaw: twilioJSON(s, map[string]any{"account_sid": "{env.TEST_TWILIO_SID}", "auth_token": "{env.TEST_TWILIO_TOKEN}"}),
		Message:     "Your code is %s",
	}
	rec := provision(t, c, l)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || s.Requests() != 1 {
		t.Fatalf("server got %d messages in %d requests, want 1", len(msgs), s.Requests())
	}
	m := msgs[0]
	if m.To != testTo || m.From != testFrom || m.MessagingServiceSid != "" || m.Body != "Your code is "+testCode {
		t.Errorf("message = %+v", m)
	}
	r := rec.get()
	if len(r) != 1 || !r[0].OK || r[0].Attempt != 1 || r[0].To != testMasked || r[0].Method != "sms" ||
		r[0].ChallengeID != "chal-1" || r[0].User != "john" {
		t.Fatalf("results = %+v, want one success to %s", r, testMasked)
	}
	logText := l.text(t)
	checkSecrets(t, "logs", logText, testCode, testTo, twiliotest.AuthToken)
	if !strings.Contains(logText, "sms sent") || !strings.Contains(logText, m.SID) {
		t.Errorf("logs lack the success and the message sid:\n%s", logText)
	}
}

func TestTwilioMessagingService(t *testing.T) {
	s := twiliotest.NewServer(t)
	c := &Config{ProviderRaw: twilioJSON(s, map[string]any{"from": nil, "messaging_service_sid": twiliotest.ServiceSID})}
	provision(t, c, nil)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].MessagingServiceSid != twiliotest.ServiceSID || msgs[0].From != "" || msgs[0].Body != testCode {
		t.Fatalf("messages = %+v", msgs)
	}
}

func TestTwilioPermanentErrors(t *testing.T) {
	tests := []struct {
		name   string
		extra  map[string]any
		script func(*twiliotest.Server)
		want   []string // in the reported error
	}{
		{
			name:   "invalid To",
			script: func(s *twiliotest.Server) { s.Fail(400, 21211, "Invalid 'To' Phone Number: "+testTo, -1) },
			want:   []string{"HTTP 400", "error 21211", "Invalid 'To' Phone Number: " + testMasked, "https://www.twilio.com/docs/errors/21211"},
		},
		{
			name:   "unsubscribed recipient",
			script: func(s *twiliotest.Server) { s.Fail(400, 21610, "Attempt to send to unsubscribed recipient", -1) },
			want:   []string{"HTTP 400", "error 21610", "unsubscribed"},
		},
		{
			name:  "wrong auth token",
			extra: map[string]any{"auth_token": "not-the-token"},
			want:  []string{"HTTP 401", "error 20003", "Authenticate"},
		},
		{
			name:  "unknown account",
			extra: map[string]any{"account_sid": "AC" + strings.Repeat("f", 32)},
			want:  []string{"HTTP 404", "error 20404"},
		},
		{
			name: "forbidden",
			script: func(s *twiliotest.Server) {
				s.Fail(403, 20008, "Resource not accessible with Test Account Credentials", -1)
			},
			want: []string{"HTTP 403", "error 20008"},
		},
		{
			name: "accepted but failed",
			script: func(s *twiliotest.Server) {
				s.Answer(201, `{"sid":"SM0123","status":"failed","error_code":30007,"error_message":"Message filtered"}`, -1)
			},
			want: []string{"error 30007", "message failed: Message filtered"},
		},
		{
			name:   "answer without sid",
			script: func(s *twiliotest.Server) { s.Answer(201, `{"status":"queued"}`, -1) },
			want:   []string{"without a message sid"},
		},
		{
			name:   "redirect",
			script: func(s *twiliotest.Server) { s.Answer(302, ``, -1) },
			want:   []string{"HTTP 302"},
		},
		{
			name:   "error without JSON",
			script: func(s *twiliotest.Server) { s.Answer(400, "<html>bad\r\nrequest for "+testTo+"</html>", -1) },
			want:   []string{"HTTP 400", "<html>bad request for " + testMasked + "</html>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := twiliotest.NewServer(t)
			if tt.script != nil {
				tt.script(s)
			}
			l := newLogs()
			c := &Config{ProviderRaw: twilioJSON(s, tt.extra), Message: "Your code is %s"}
			rec := provision(t, c, l)
			err := c.Deliver(t.Context(), testMessage())
			if !errors.Is(err, authenticators.ErrDeliveryFailed) {
				t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
			}
			if n := s.Requests(); n != 1 {
				t.Errorf("server got %d requests, want 1 (no retry)", n)
			}
			if n := len(s.Messages()); n != 0 && tt.name != "accepted but failed" {
				t.Errorf("server accepted %d messages", n)
			}
			r := rec.get()
			if len(r) != 1 || r[0].OK || !r[0].Permanent || r[0].Attempt != 1 || r[0].To != testMasked {
				t.Fatalf("results = %+v, want one permanent failure to %s", r, testMasked)
			}
			for _, w := range tt.want {
				if !strings.Contains(r[0].Error, w) {
					t.Errorf("reported error %q lacks %q", r[0].Error, w)
				}
			}
			all := resultsText(r) + err.Error() + l.text(t)
			checkSecrets(t, "results, error and logs", all, testCode, testTo, twiliotest.AuthToken, "not-the-token")
			if !strings.Contains(l.text(t), "sms delivery failed") {
				t.Errorf("no error logged:\n%s", l.text(t))
			}
		})
	}
}

func TestTwilioTransientErrorsAreRetried(t *testing.T) {
	tests := []struct {
		name   string
		script func(*twiliotest.Server)
		calls  int
		ok     bool
		want   string
	}{
		{
			name:   "500 then success",
			script: func(s *twiliotest.Server) { s.Fail(500, 20500, "Internal Server Error", 2) },
			calls:  3, ok: true, want: "HTTP 500",
		},
		{
			name:   "429 then success",
			script: func(s *twiliotest.Server) { s.Fail(429, 20429, "Too Many Requests", 1) },
			calls:  2, ok: true, want: "error 20429",
		},
		{
			name:   "503 without JSON then success",
			script: func(s *twiliotest.Server) { s.Answer(503, "upstream down", 1) },
			calls:  2, ok: true, want: "upstream down",
		},
		{
			name:   "500 until retries run out",
			script: func(s *twiliotest.Server) { s.Fail(500, 20500, "Internal Server Error", -1) },
			calls:  4, want: "HTTP 500",
		},
		{
			name: "500 then permanent 400",
			script: func(s *twiliotest.Server) {
				s.Fail(500, 20500, "Internal Server Error", 1)
				s.Fail(400, 21211, "Invalid 'To' Phone Number", 1)
			},
			calls: 2, want: "HTTP 500",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := twiliotest.NewServer(t)
			tt.script(s)
			l := newLogs()
			c := &Config{ProviderRaw: twilioJSON(s, nil)}
			rec := provision(t, c, l)
			err := c.Deliver(t.Context(), testMessage())
			if tt.ok != (err == nil) {
				t.Fatalf("Deliver() = %v, want success %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, authenticators.ErrDeliveryFailed) {
				t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
			}
			if n := s.Requests(); n != tt.calls {
				t.Errorf("server got %d requests, want %d", n, tt.calls)
			}
			wantMsgs := 0
			if tt.ok {
				wantMsgs = 1
			}
			if n := len(s.Messages()); n != wantMsgs {
				t.Errorf("server accepted %d messages, want %d", n, wantMsgs)
			}
			r := rec.get()
			if len(r) != tt.calls {
				t.Fatalf("results = %+v, want %d", r, tt.calls)
			}
			for i, res := range r {
				last := i == len(r)-1
				if res.Attempt != i+1 || res.OK != (last && tt.ok) || res.Permanent != (last && !tt.ok) || res.To != testMasked {
					t.Errorf("result %d = %+v", i, res)
				}
			}
			if !strings.Contains(r[0].Error, tt.want) {
				t.Errorf("first error %q lacks %q", r[0].Error, tt.want)
			}
			if !strings.Contains(l.text(t), "sms delivery attempt failed, retrying") {
				t.Errorf("retry not logged:\n%s", l.text(t))
			}
			checkSecrets(t, "results and logs", resultsText(r)+l.text(t), testCode, testTo, twiliotest.AuthToken)
		})
	}
}

func TestTwilioTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	s := twiliotest.NewServer(t)
	s.Hang(-1)
	c := &Config{
		ProviderRaw: twilioJSON(s, map[string]any{"timeout": timeout.String()}),
		Delivery:    &delivery.Config{Retries: 1},
	}
	rec := provision(t, c, nil)
	start := time.Now()
	err := c.Deliver(t.Context(), testMessage())
	elapsed := time.Since(start)
	if !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
	}
	if elapsed < 2*timeout || elapsed > 2*timeout+2*time.Second {
		t.Errorf("Deliver took %v, want about %v", elapsed, 2*timeout)
	}
	if n := s.Requests(); n != 2 {
		t.Errorf("server got %d requests, want 2", n)
	}
	r := rec.get()
	if len(r) != 2 || r[0].Permanent || !r[1].Permanent || r[0].Latency < timeout {
		t.Fatalf("results = %+v, want a timeout, retried once", r)
	}
	for _, res := range r {
		if !strings.Contains(res.Error, "no answer within 200ms") || !strings.Contains(res.Error, "/Messages.json") {
			t.Errorf("error = %q, want a timeout naming the endpoint", res.Error)
		}
	}
}

func TestTwilioWaitsBoundedWhileRetrying(t *testing.T) {
	s := twiliotest.NewServer(t)
	s.Fail(503, 20503, "Service Unavailable", -1)
	c := &Config{
		ProviderRaw: twilioJSON(s, nil),
		Delivery:    &delivery.Config{Wait: caddy.Duration(200 * time.Millisecond)},
		ch:          delivery.Channel[Text]{Backoff: time.Hour},
	}
	rec := provision(t, c, nil)
	start := time.Now()
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatalf("Deliver() = %v, want nil while retrying", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Deliver took %v", elapsed)
	}
	if r := rec.get(); len(r) != 1 || r[0].OK || r[0].Permanent {
		t.Fatalf("results = %+v, want one transient failure", r)
	}
}

func TestTwilioServerDown(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	c := &Config{
		ProviderRaw: providerJSON("twilio", map[string]any{
			"account_sid": twiliotest.AccountSID, "auth_token": twiliotest.AuthToken, "from": testFrom, "api_url": url,
		}),
	}
	rec := provision(t, c, nil)
	if err := c.Deliver(t.Context(), testMessage()); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
	}
	r := rec.get()
	if len(r) != 4 || r[0].Permanent || !r[3].Permanent || !strings.Contains(r[0].Error, "connection refused") {
		t.Fatalf("results = %+v, want 3 transient failures and a final one", r)
	}
}

func TestTwilioValidate(t *testing.T) {
	t.Setenv("TEST_TWILIO_TOKEN", "tok")
	sid := twiliotest.AccountSID
	tests := []struct {
		name string
		tw   Twilio
		ok   bool
	}{
		{"from number", Twilio{AccountSID: sid, AuthToken: "{env.TEST_TWILIO_TOKEN}", From: testFrom}, true},
		{"alphanumeric sender", Twilio{AccountSID: sid, AuthToken: "t", From: "Example Co"}, true},
		{"short code", Twilio{AccountSID: sid, AuthToken: "t", From: "12345"}, true},
		{"messaging service", Twilio{AccountSID: sid, AuthToken: "t", MessagingServiceSID: twiliotest.ServiceSID}, true},
		{"regional api", Twilio{AccountSID: sid, AuthToken: "t", From: testFrom, APIURL: "https://api.dublin.ie1.twilio.com/"}, true},
		{"http to localhost", Twilio{AccountSID: sid, AuthToken: "t", From: testFrom, APIURL: "http://127.0.0.1:8080"}, true},

		{"token env unset", Twilio{AccountSID: sid, AuthToken: "{env.TEST_TWILIO_UNSET}", From: testFrom}, false},
		{"no sid", Twilio{AuthToken: "t", From: testFrom}, false},
		{"bad sid", Twilio{AccountSID: "AC123", AuthToken: "t", From: testFrom}, false},
		{"sid with path", Twilio{AccountSID: "AC0123456789abcdef0123456789abcde/", AuthToken: "t", From: testFrom}, false},
		{"no sender", Twilio{AccountSID: sid, AuthToken: "t"}, false},
		{"both senders", Twilio{AccountSID: sid, AuthToken: "t", From: testFrom, MessagingServiceSID: twiliotest.ServiceSID}, false},
		{"bad service sid", Twilio{AccountSID: sid, AuthToken: "t", MessagingServiceSID: "MG12"}, false},
		{"from not E.164", Twilio{AccountSID: sid, AuthToken: "t", From: "+0123"}, false},
		{"from with CRLF", Twilio{AccountSID: sid, AuthToken: "t", From: "+12015550100\r\nX"}, false},
		{"sender id too long", Twilio{AccountSID: sid, AuthToken: "t", From: "Example Company"}, false},
		{"plain http elsewhere", Twilio{AccountSID: sid, AuthToken: "t", From: testFrom, APIURL: "http://api.twilio.com"}, false},
		{"api url with query", Twilio{AccountSID: sid, AuthToken: "t", From: testFrom, APIURL: "https://api.twilio.com/?x=1"}, false},
		{"api url with user info", Twilio{AccountSID: sid, AuthToken: "t", From: testFrom, APIURL: "https://u:p@api.twilio.com"}, false},
		{"api url not http", Twilio{AccountSID: sid, AuthToken: "t", From: testFrom, APIURL: "ftp://api.twilio.com"}, false},
		{"negative timeout", Twilio{AccountSID: sid, AuthToken: "t", From: testFrom, Timeout: -1}, false},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tw := tt.tw
			if err := tw.Provision(ctx); err != nil {
				t.Fatalf("Provision() = %v", err)
			}
			defer tw.Cleanup()
			if err := tw.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestTwilioEndpoint(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for api, want := range map[string]string{
		"":                              "https://api.twilio.com/2010-04-01/Accounts/" + twiliotest.AccountSID + "/Messages.json",
		"https://proxy.example.com/tw/": "https://proxy.example.com/tw/2010-04-01/Accounts/" + twiliotest.AccountSID + "/Messages.json",
	} {
		tw := Twilio{AccountSID: twiliotest.AccountSID, AuthToken: "t", From: testFrom, APIURL: api}
		if err := tw.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		if tw.endpoint != want {
			t.Errorf("endpoint for %q = %q, want %q", api, tw.endpoint, want)
		}
	}
}
