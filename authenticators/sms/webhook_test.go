package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// gateway is a local SMS gateway: it records every request and answers
// with the scripted statuses, then 200.
type gateway struct {
	*httptest.Server
	mu       sync.Mutex
	requests []gatewayRequest
	script   []int // statuses; 0 hangs until the client gives up
}

type gatewayRequest struct {
	method string
	path   string
	query  string
	header http.Header
	body   []byte
}

func newGateway(t *testing.T, script ...int) *gateway {
	g := &gateway{script: script}
	g.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		g.mu.Lock()
		g.requests = append(g.requests, gatewayRequest{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), body})
		status := http.StatusOK
		if len(g.script) > 0 {
			status, g.script = g.script[0], g.script[1:]
		}
		g.mu.Unlock()
		if status == 0 {
			<-r.Context().Done()
			return
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"status":%d,"echo":%q}`, status, body)
	}))
	t.Cleanup(g.Close)
	return g
}

func (g *gateway) got() []gatewayRequest {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]gatewayRequest(nil), g.requests...)
}

// trickyMessage has quotes, a backslash, an ampersand, an equals sign,
// angle brackets, newlines and a placeholder name in it.
const trickyMessage = "Say \"hi\" & <b>x=1</b>\\\nline 2 {code} {to} %% %s"

func TestWebhookJSON(t *testing.T) {
	g := newGateway(t)
	t.Setenv("TEST_GW_TOKEN", "gw-secret-token")
	l := newLogs()
	c := &Config{
		ProviderRaw: providerJSON("webhook", map[string]any{
			"url":     g.URL + "/v1/send?key=query-secret",
			"headers": map[string]string{"Authorization": "Bearer {env.TEST_GW_TOKEN}", "X-Tenant": "mfa"},
			"body":    `{"recipient":"{to}","text":"{message}","otp":"{code}","tags":["mfa"]}`,
		}),
		Message: trickyMessage,
	}
	rec := provision(t, c, l)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	reqs := g.got()
	if len(reqs) != 1 {
		t.Fatalf("gateway got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/v1/send" || r.query != "key=query-secret" {
		t.Errorf("request = %s %s?%s", r.method, r.path, r.query)
	}
	if got := r.header.Get("Content-Type"); got != "application/json" {
		t.Errorf("Content-Type = %q", got)
	}
	if got := r.header.Get("Authorization"); got != "Bearer gw-secret-token" {
		t.Errorf("Authorization = %q", got)
	}
	if got := r.header.Get("X-Tenant"); got != "mfa" {
		t.Errorf("X-Tenant = %q", got)
	}
	var body struct {
		Recipient string   `json:"recipient"`
		Text      string   `json:"text"`
		OTP       string   `json:"otp"`
		Tags      []string `json:"tags"`
	}
	if err := json.Unmarshal(r.body, &body); err != nil {
		t.Fatalf("body is not JSON: %v\n%s", err, r.body)
	}
	wantText := "Say \"hi\" & <b>x=1</b>\\\nline 2 {code} {to} % " + testCode
	if body.Recipient != testTo || body.Text != wantText || body.OTP != testCode || len(body.Tags) != 1 {
		t.Errorf("body = %+v\nraw: %s", body, r.body)
	}
	if res := rec.get(); len(res) != 1 || !res[0].OK || res[0].To != testMasked {
		t.Errorf("results = %+v", res)
	}
	checkSecrets(t, "logs", l.text(t), testCode, testTo, "gw-secret-token", "query-secret")
}

func TestWebhookForm(t *testing.T) {
	g := newGateway(t)
	c := &Config{
		ProviderRaw: providerJSON("webhook", map[string]any{
			"url":    g.URL + "/send",
			"method": "put",
			"format": "form",
			"body":   "To={to}&Text={message}&Code={code}&Flash=0",
		}),
		Message: trickyMessage,
	}
	provision(t, c, nil)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	reqs := g.got()
	if len(reqs) != 1 {
		t.Fatalf("gateway got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPut {
		t.Errorf("method = %s", r.method)
	}
	if got := r.header.Get("Content-Type"); got != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type = %q", got)
	}
	form, err := url.ParseQuery(string(r.body))
	if err != nil {
		t.Fatalf("body is not a form: %v\n%s", err, r.body)
	}
	want := url.Values{
		"To":    {testTo},
		"Text":  {"Say \"hi\" & <b>x=1</b>\\\nline 2 {code} {to} % " + testCode},
		"Code":  {testCode},
		"Flash": {"0"},
	}
	if fmt.Sprint(form) != fmt.Sprint(want) {
		t.Errorf("form = %q\nwant   %q", form, want)
	}
}

func TestWebhookDefaultBodies(t *testing.T) {
	for _, format := range []string{"", FormatJSON, FormatForm} {
		t.Run("format "+format, func(t *testing.T) {
			g := newGateway(t)
			c := &Config{ProviderRaw: providerJSON("webhook", map[string]any{"url": g.URL, "format": format})}
			provision(t, c, nil)
			if err := c.Deliver(t.Context(), testMessage()); err != nil {
				t.Fatalf("Deliver() = %v", err)
			}
			body := string(g.got()[0].body)
			want := `{"to":"+12015550123","message":"493817"}`
			if format == FormatForm {
				want = "to=%2B12015550123&message=493817"
			}
			if body != want {
				t.Errorf("body = %s, want %s", body, want)
			}
		})
	}
}

func TestWebhookErrors(t *testing.T) {
	tests := []struct {
		name      string
		script    []int
		ok        bool
		requests  int
		permanent bool
		want      string
	}{
		{name: "400 is permanent", script: []int{400}, requests: 1, permanent: true, want: "webhook: HTTP 400 Bad Request"},
		{name: "401 is permanent", script: []int{401, 401}, requests: 1, permanent: true, want: "HTTP 401"},
		{name: "422 is permanent", script: []int{422}, requests: 1, permanent: true, want: "HTTP 422"},
		{name: "redirect is permanent", script: []int{307}, requests: 1, permanent: true, want: "HTTP 307"},
		{name: "503 is retried", script: []int{503}, ok: true, requests: 2, want: "HTTP 503"},
		{name: "429 is retried", script: []int{429}, ok: true, requests: 2, want: "HTTP 429 Too Many Requests"},
		{name: "500 until retries run out", script: []int{500, 500}, requests: 2, permanent: true, want: "HTTP 500"},
		{name: "timeout is retried", script: []int{0}, ok: true, requests: 2, want: "no answer within 200ms"},
		{name: "201 is success", script: []int{201}, ok: true, requests: 1},
		{name: "204 is success", script: []int{204}, ok: true, requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGateway(t, tt.script...)
			l := newLogs()
			c := &Config{
				ProviderRaw: providerJSON("webhook", map[string]any{
					"url":     g.URL + "/send?key=query-secret",
					"timeout": "200ms",
				}),
				Delivery: &delivery.Config{Retries: 1},
			}
			rec := provision(t, c, l)
			err := c.Deliver(t.Context(), testMessage())
			if tt.ok != (err == nil) {
				t.Fatalf("Deliver() = %v, want success %v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, authenticators.ErrDeliveryFailed) {
				t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
			}
			if n := len(g.got()); n != tt.requests {
				t.Errorf("gateway got %d requests, want %d", n, tt.requests)
			}
			r := rec.get()
			if len(r) != tt.requests {
				t.Fatalf("results = %+v, want %d", r, tt.requests)
			}
			last := r[len(r)-1]
			if last.OK != tt.ok || last.Permanent != tt.permanent {
				t.Errorf("last result = %+v", last)
			}
			if tt.want != "" && !strings.Contains(r[0].Error, tt.want) {
				t.Errorf("first error %q lacks %q", r[0].Error, tt.want)
			}
			// The gateway echoes the body, code and number included.
			checkSecrets(t, "results and logs", resultsText(r)+l.text(t), testCode, testTo, "query-secret")
		})
	}
}

func TestWebhookValidate(t *testing.T) {
	tests := []struct {
		name string
		w    Webhook
		ok   bool
	}{
		{"defaults", Webhook{URL: "https://sms.example.com/send"}, true},
		{"code only", Webhook{URL: "https://sms.example.com/send", Body: `{"to":"{to}","otp":"{code}"}`}, true},
		{"form", Webhook{URL: "https://sms.example.com/send", Format: "form", Body: "to={to}&msg={message}"}, true},
		{"plain http to a gateway", Webhook{URL: "http://sms.internal/send"}, true},
		{"custom content type", Webhook{URL: "https://sms.example.com/send", Headers: map[string]string{"content-type": "application/vnd.gw+json"}}, true},

		{"no url", Webhook{}, false},
		{"url not http", Webhook{URL: "file:///etc/passwd"}, false},
		{"url without host", Webhook{URL: "https:///send"}, false},
		{"url with fragment", Webhook{URL: "https://sms.example.com/send#x"}, false},
		{"url with CRLF", Webhook{URL: "https://sms.example.com/send\r\nX: y"}, false},
		{"method GET", Webhook{URL: "https://sms.example.com/send", Method: "GET"}, false},
		{"format xml", Webhook{URL: "https://sms.example.com/send", Format: "xml"}, false},
		{"no {to}", Webhook{URL: "https://sms.example.com/send", Body: `{"text":"{message}"}`}, false},
		{"no text", Webhook{URL: "https://sms.example.com/send", Body: `{"to":"{to}"}`}, false},
		{"placeholder outside quotes", Webhook{URL: "https://sms.example.com/send", Body: `{"to":{to},"text":"{message}"}`}, false},
		{"code as a JSON number", Webhook{URL: "https://sms.example.com/send", Body: `{"to":"{to}","otp":{code}}`}, false},
		{"not JSON", Webhook{URL: "https://sms.example.com/send", Body: `to={to}&text={message}`}, false},
		{"bad form", Webhook{URL: "https://sms.example.com/send", Format: "form", Body: "to={to}&text={message}&x=%zz"}, false},
		{"header Host", Webhook{URL: "https://sms.example.com/send", Headers: map[string]string{"host": "evil"}}, false},
		{"header Content-Length", Webhook{URL: "https://sms.example.com/send", Headers: map[string]string{"Content-Length": "1"}}, false},
		{"header value with CRLF", Webhook{URL: "https://sms.example.com/send", Headers: map[string]string{"X-A": "b\r\nX-Injected: 1"}}, false},
		{"header name with space", Webhook{URL: "https://sms.example.com/send", Headers: map[string]string{"X A": "b"}}, false},
		{"negative timeout", Webhook{URL: "https://sms.example.com/send", Timeout: -1}, false},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.w
			if err := w.Provision(ctx); err != nil {
				t.Fatalf("Provision() = %v", err)
			}
			defer w.Cleanup()
			if err := w.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func FuzzWebhookRender(f *testing.F) {
	for _, s := range []string{trickyMessage, "", "\x00\r\n\t", "\u2028\u2029", "{to}{message}{code}", "a=b&c=d", `"}]`, "\xff\xfe"} {
		f.Add(s, testCode)
	}
	jsonHook := &Webhook{format: FormatJSON, body: `{"to":"{to}","text":"{message}","otp":"{code}"}`}
	formHook := &Webhook{format: FormatForm, body: "to={to}&text={message}&otp={code}"}
	f.Fuzz(func(t *testing.T, message, code string) {
		text := Text{To: testTo, Body: message, Code: code}

		b, err := jsonHook.render(text)
		if err != nil {
			t.Fatal(err)
		}
		var got struct{ To, Text, OTP string }
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("JSON body for %q, %q is invalid: %v\n%s", message, code, err, b)
		}
		if want := string([]rune(message)); got.Text != want || got.To != testTo {
			t.Fatalf("JSON body for %q gives %q", message, got.Text)
		}

		b, err = formHook.render(text)
		if err != nil {
			t.Fatal(err)
		}
		form, err := url.ParseQuery(string(b))
		if err != nil {
			t.Fatalf("form body for %q, %q is invalid: %v\n%s", message, code, err, b)
		}
		if len(form) != 3 || form.Get("text") != message || form.Get("otp") != code || form.Get("to") != testTo {
			t.Fatalf("form body for %q, %q gives %q", message, code, form)
		}
	})
}

// Deliver passes the timeout of a webhook, not only of the queue, to the
// request: a hanging gateway is given up on in time.
func TestWebhookTimeoutBounded(t *testing.T) {
	g := newGateway(t, 0, 0, 0, 0)
	c := &Config{
		ProviderRaw: providerJSON("webhook", map[string]any{"url": g.URL, "timeout": "100ms"}),
		Delivery:    &delivery.Config{Retries: -1},
	}
	rec := provision(t, c, nil)
	start := time.Now()
	if err := c.Deliver(t.Context(), testMessage()); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Fatalf("Deliver() = %v", err)
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("Deliver took %v", elapsed)
	}
	if r := rec.get(); len(r) != 1 || !r[0].Permanent {
		t.Errorf("results = %+v", r)
	}
}
