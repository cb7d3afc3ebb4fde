package twiliotest

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func post(t *testing.T, ctx context.Context, s *Server, path, user, pass string, form url.Values) (int, map[string]any, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp.StatusCode, body, nil
}

const messages = "/2010-04-01/Accounts/" + AccountSID + "/Messages.json"

func TestServer(t *testing.T) {
	s := NewServer(t)
	good := url.Values{"To": {"+12015550123"}, "From": {"+12015550100"}, "Body": {"Your code is 123456"}}
	tests := []struct {
		name       string
		path       string
		user, pass string
		form       url.Values
		status     int
		code       float64
	}{
		{"wrong path", "/2010-04-01/Accounts/" + AccountSID + "/Calls.json", AccountSID, AuthToken, good, 404, 20404},
		{"no auth", messages, "", "", good, 401, 20003},
		{"wrong token", messages, AccountSID, "nope", good, 401, 20003},
		{"invalid To", messages, AccountSID, AuthToken, url.Values{"To": {"2015550123"}, "From": {"+12015550100"}, "Body": {"x"}}, 400, 21211},
		{"no Body", messages, AccountSID, AuthToken, url.Values{"To": {"+12015550123"}, "From": {"+12015550100"}}, 400, 21602},
		{"no sender", messages, AccountSID, AuthToken, url.Values{"To": {"+12015550123"}, "Body": {"x"}}, 400, 21603},
		{"two To", messages, AccountSID, AuthToken, url.Values{"To": {"+12015550123", "+12015550124"}, "From": {"+12015550100"}, "Body": {"x"}}, 400, 20001},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, err := post(t, t.Context(), s, tt.path, tt.user, tt.pass, tt.form)
			if err != nil {
				t.Fatal(err)
			}
			if status != tt.status || body["code"] != tt.code || body["status"] != float64(tt.status) ||
				body["message"] == "" || !strings.HasPrefix(body["more_info"].(string), "https://www.twilio.com/docs/errors/") {
				t.Errorf("answer %d %v, want %d with error %v", status, body, tt.status, tt.code)
			}
		})
	}
	if n := len(s.Messages()); n != 0 {
		t.Fatalf("%d messages accepted", n)
	}

	status, body, err := post(t, t.Context(), s, messages, AccountSID, AuthToken, good)
	if err != nil || status != 201 || body["status"] != "queued" || !strings.HasPrefix(body["sid"].(string), "SM") || body["to"] != "+12015550123" {
		t.Fatalf("answer %d %v, %v", status, body, err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].SID != body["sid"] || msgs[0].Body != "Your code is 123456" || msgs[0].From != "+12015550100" {
		t.Errorf("messages = %+v", msgs)
	}
	if n := s.Requests(); n != len(tests)+1 {
		t.Errorf("Requests() = %d, want %d", n, len(tests)+1)
	}
}

func TestServerScript(t *testing.T) {
	s := NewServer(t)
	good := url.Values{"To": {"+12015550123"}, "MessagingServiceSid": {ServiceSID}, "Body": {"x"}}
	s.Fail(429, 20429, "Too Many Requests", 1)
	s.Answer(500, `{"oops":true}`, 1)
	s.Hang(1)

	if status, body, _ := post(t, t.Context(), s, messages, AccountSID, AuthToken, good); status != 429 || body["code"] != float64(20429) {
		t.Errorf("first answer %d %v", status, body)
	}
	if status, body, _ := post(t, t.Context(), s, messages, AccountSID, AuthToken, good); status != 500 || body["oops"] != true {
		t.Errorf("second answer %d %v", status, body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := post(t, ctx, s, messages, AccountSID, AuthToken, good); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("third request = %v, want no answer", err)
	}
	if status, body, _ := post(t, t.Context(), s, messages, AccountSID, AuthToken, good); status != 201 || body["status"] != "accepted" {
		t.Errorf("fourth answer %d %v", status, body)
	}

	// Unauthenticated requests do not use up the script.
	s.Fail(503, 20503, "Service Unavailable", -1)
	if status, _, _ := post(t, t.Context(), s, messages, AccountSID, "nope", good); status != 401 {
		t.Errorf("unauthenticated answer %d", status)
	}
	for range 3 {
		if status, _, _ := post(t, t.Context(), s, messages, AccountSID, AuthToken, good); status != 503 {
			t.Errorf("answer %d, want 503 for good", status)
		}
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages accepted, want 1", n)
	}
}
