package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
)

func TestProvisionDefaults(t *testing.T) {
	c := &Config{
		ProviderRaw: providerJSON("outbox", map[string]any{"dir": t.TempDir()}),
		Limits:      authenticators.Limits{Throttle: &authenticators.Throttle{PerHour: -1}},
	}
	provision(t, c, nil)
	if c.Send != "code" || c.Message != "%s" || c.CodeLength != 6 || time.Duration(c.CodeTTL) != time.Minute ||
		c.MaxAttempts != 3 || c.MaxSends != 3 || c.PerCountryPerHour != 20 {
		t.Errorf("config = %+v", c)
	}
	want := authenticators.Throttle{PerHour: -1, Per5m: 10, PerIPPerHour: 10, PerUserPerHour: 5, PerDestinationPerHour: 5, Cooldown: caddy.Duration(30 * time.Second)}
	if *c.Throttle != want {
		t.Errorf("throttle = %+v, want %+v", *c.Throttle, want)
	}
	if d := c.Delivery; d.Workers != 2 || d.Retries != 3 || time.Duration(d.Wait) != 5*time.Second {
		t.Errorf("delivery = %+v", *d)
	}
	if c.Method() != "sms" || c.Mask("+15551234567") != "+1*******67" {
		t.Errorf("Method() = %q, Mask() = %q", c.Method(), c.Mask("+15551234567"))
	}
	if !c.AllowedCountry("SE") {
		t.Error("an empty allowed_countries refused SE")
	}
}

func TestValidate(t *testing.T) {
	outbox := providerJSON("outbox", map[string]any{"dir": "x"})
	limits := func(l authenticators.Limits) Config { return Config{ProviderRaw: outbox, Limits: l} }
	tests := []struct {
		name string
		c    Config
		ok   bool
	}{
		{"minimal", Config{ProviderRaw: outbox}, true},
		{"send code", Config{ProviderRaw: outbox, Send: "code"}, true},
		{"send link", Config{ProviderRaw: outbox, Send: "link"}, true},
		{"link ttl 1h", Config{ProviderRaw: outbox, Send: "link", LinkTTL: caddy.Duration(time.Hour)}, true},
		{"link ttl 1h1s", Config{ProviderRaw: outbox, Send: "link", LinkTTL: caddy.Duration(time.Hour + time.Second)}, false},
		{"link ttl negative", Config{ProviderRaw: outbox, LinkTTL: -1}, false},
		{"link message", Config{ProviderRaw: outbox, Send: "link", LinkMessage: "Sign in: %s"}, true},
		{"link message without %s", Config{ProviderRaw: outbox, Send: "link", LinkMessage: "Sign in"}, false},
		{"localized link message", Config{ProviderRaw: outbox, LinkMessages: map[string]string{"sv": "Logga in: %s"}}, true},
		{"localized link message bad tag", Config{ProviderRaw: outbox, LinkMessages: map[string]string{"swedish!": "%s"}}, false},
		{"send other", Config{ProviderRaw: outbox, Send: "email"}, false},
		{"message", Config{ProviderRaw: outbox, Message: "Your code is %s"}, true},
		{"message without %s", Config{ProviderRaw: outbox, Message: "Your code"}, false},
		{"message with two %s", Config{ProviderRaw: outbox, Message: "%s %s"}, false},
		{"localized", Config{ProviderRaw: outbox, Messages: map[string]string{"sv": "Din kod är %s"}}, true},
		{"localized without %s", Config{ProviderRaw: outbox, Messages: map[string]string{"sv": "Din kod"}}, false},
		{"localized bad tag", Config{ProviderRaw: outbox, Messages: map[string]string{"swedish!": "%s"}}, false},
		{"countries", Config{ProviderRaw: outbox, AllowedCountries: []string{"US", "ca", "GB", "SE"}}, true},
		{"unknown country", Config{ProviderRaw: outbox, AllowedCountries: []string{"US", "XX"}}, false},
		{"UK is GB", Config{ProviderRaw: outbox, AllowedCountries: []string{"UK"}}, false},
		{"country twice", Config{ProviderRaw: outbox, AllowedCountries: []string{"US", "us"}}, false},
		{"country cap off", Config{ProviderRaw: outbox, PerCountryPerHour: -1}, true},
		{"code length 3", limits(authenticators.Limits{CodeLength: 3}), false},
		{"code length 10", limits(authenticators.Limits{CodeLength: 10}), true},
		{"code length 11", limits(authenticators.Limits{CodeLength: 11}), false},
		{"code ttl 10m", limits(authenticators.Limits{CodeTTL: caddy.Duration(10 * time.Minute)}), true},
		{"code ttl 11m", limits(authenticators.Limits{CodeTTL: caddy.Duration(11 * time.Minute)}), false},
		{"code ttl negative", limits(authenticators.Limits{CodeTTL: -1}), false},
		{"max attempts 101", limits(authenticators.Limits{MaxAttempts: 101}), false},
		{"max sends negative", limits(authenticators.Limits{MaxSends: -1}), false},
		{"too many workers", Config{ProviderRaw: outbox, Delivery: &delivery.Config{Workers: 101}}, false},
		{"too many retries", Config{ProviderRaw: outbox, Delivery: &delivery.Config{Retries: 21}}, false},
		{"wait too long", Config{ProviderRaw: outbox, Delivery: &delivery.Config{Wait: caddy.Duration(2 * time.Minute)}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.c.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestProvisionErrors(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for name, c := range map[string]*Config{
		"no provider":      {},
		"unknown provider": {ProviderRaw: providerJSON("carrier_pigeon", nil)},
		"bad twilio":       {ProviderRaw: providerJSON("twilio", map[string]any{"account_sid": "x"})},
		"bad message":      {ProviderRaw: providerJSON("outbox", map[string]any{"dir": t.TempDir()}), Message: "no code"},
	} {
		t.Run(name, func(t *testing.T) {
			c.ch.Logger = zap.NewNop()
			if err := c.Provision(ctx, nil); err == nil {
				t.Fatal("Provision() succeeded")
			}
			if err := c.Cleanup(); err != nil {
				t.Errorf("Cleanup() after a failed Provision = %v", err)
			}
		})
	}
}

// TestDeliverRefusesBadInput shows that a destination that is not one
// valid number in an allowed country never reaches the provider: no CR/LF
// or second number can add a recipient or a form field (SECURITY.md I40).
func TestDeliverRefusesBadInput(t *testing.T) {
	s := twiliotest.NewServer(t)
	c := &Config{ProviderRaw: twilioJSON(s, nil), AllowedCountries: []string{"US", "CA"}}
	rec := provision(t, c, nil)
	for _, to := range []string{
		"",
		"+12015550123\r\nBcc: +12015550124",
		"+12015550123\nTo=+12015550124",
		"+12015550123%0d%0a",
		"+12015550123&To=%2B12015550124",
		"+12015550123,+12015550124",
		"+12015550123\x00",
		"12015550123",
		"+1 201 555 0123 ext 9",
		"+15551234567",
		"+19002345678",
		"+46701234567", // valid, but SE is not allowed
		"john@example.com",
	} {
		m := testMessage()
		m.To = to
		if err := c.Deliver(t.Context(), m); !errors.Is(err, authenticators.ErrDeliveryFailed) {
			t.Errorf("Deliver(to %q) = %v, want ErrDeliveryFailed", to, err)
		}
	}
	bad := []authenticators.Message{testMessage(), testMessage(), testMessage()}
	bad[0].Code = ""
	bad[1].Code, bad[1].Link = "", "javascript:alert(1)"
	bad[2].Code = "12\r\n34"
	for _, m := range bad {
		if err := c.Deliver(t.Context(), m); !errors.Is(err, authenticators.ErrDeliveryFailed) {
			t.Errorf("Deliver(code %q, link %q) = %v, want ErrDeliveryFailed", m.Code, m.Link, err)
		}
	}
	if n := s.Requests(); n != 0 {
		t.Errorf("the provider got %d requests, want none", n)
	}
	r := rec.get()
	if len(r) != 16 {
		t.Fatalf("%d results, want 16", len(r))
	}
	for _, res := range r {
		if res.OK || !res.Permanent || res.Error == "" || res.Method != "sms" || res.ChallengeID != "chal-1" {
			t.Errorf("result = %+v", res)
		}
		if res.To != "***" && !maskPattern.MatchString(res.To) {
			t.Errorf("result to = %q, want masked", res.To)
		}
	}
	checkSecrets(t, "results", resultsText(r), "12015550123", "46701234567", testCode, "12\r\n34", "example.com")
	if err := new(Config).Deliver(t.Context(), testMessage()); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Errorf("Deliver on an unprovisioned config = %v", err)
	}
}

func TestDeliverLocalized(t *testing.T) {
	s := twiliotest.NewServer(t)
	c := &Config{
		ProviderRaw: twilioJSON(s, nil),
		Message:     "Your code is %s",
		Messages:    map[string]string{"sv": "Din kod är %s", "de": "Ihr Code lautet %s"},
	}
	provision(t, c, nil)
	for _, lang := range []string{"sv-SE,sv;q=0.9,en;q=0.8", "", "de-CH", "fr"} {
		ctx := t.Context()
		if lang != "" {
			ctx = WithLanguage(ctx, lang)
		}
		if err := c.Deliver(ctx, testMessage()); err != nil {
			t.Fatalf("Deliver(%q) = %v", lang, err)
		}
	}
	var bodies []string
	for _, m := range s.Messages() {
		bodies = append(bodies, m.Body)
	}
	want := []string{"Din kod är " + testCode, "Your code is " + testCode, "Ihr Code lautet " + testCode, "Your code is " + testCode}
	if fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Errorf("bodies = %q, want %q", bodies, want)
	}
}

func TestOutboxWritesText(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sms-outbox")
	c := &Config{ProviderRaw: providerJSON("outbox", map[string]any{"dir": dir}), Message: "Your code is %s\nDo not share it."}
	provision(t, c, nil)
	for range 2 {
		if err := c.Deliver(t.Context(), testMessage()); err != nil {
			t.Fatalf("Deliver() = %v", err)
		}
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o700 {
		t.Errorf("dir mode = %o, want 700", perm)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("outbox holds %d entries, want 2", len(entries))
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".txt") || strings.HasPrefix(e.Name(), ".") {
			t.Errorf("unexpected file %q", e.Name())
		}
		info, _ := e.Info()
		if perm := info.Mode().Perm(); perm != 0o600 {
			t.Errorf("%s mode = %o, want 600", e.Name(), perm)
		}
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		head, body, ok := strings.Cut(string(raw), "\n\n")
		lines := strings.Split(head, "\n")
		if !ok || len(lines) != 2 || lines[0] != "To: "+testTo || !strings.HasPrefix(lines[1], "Date: ") {
			t.Errorf("%s header = %q", e.Name(), head)
		}
		if body != "Your code is "+testCode+"\nDo not share it.\n" {
			t.Errorf("%s body = %q", e.Name(), body)
		}
	}
	if entries[0].Name() >= entries[1].Name() {
		t.Errorf("names do not sort by time: %s, %s", entries[0].Name(), entries[1].Name())
	}
}

func TestNotify(t *testing.T) {
	const site = "app.example.com"
	tests := []struct {
		event, factor string
		want          string
	}{
		{authenticators.NoticeFactorAdded, "sms", "Security notice: a phone number was added to your account on " + site + "."},
		{authenticators.NoticeFactorAdded, "totp", "Security notice: an authenticator app was added to your account on " + site + "."},
		{authenticators.NoticeFactorRemoved, "email", "Security notice: an email address was removed from your account on " + site + "."},
		{authenticators.NoticeRecoveryCodeUsed, "", "Security notice: a recovery code was used to sign in to your account on " + site + "."},
		{authenticators.NoticeRecoveryCodesRenewed, "", "Security notice: new recovery codes were generated for your account on " + site + "."},
	}
	s := twiliotest.NewServer(t)
	c := &Config{ProviderRaw: twilioJSON(s, nil)}
	rec := provision(t, c, nil)
	for _, tt := range tests {
		n := authenticators.Notice{User: "john", To: testTo, Site: site, Event: tt.event, Factor: tt.factor, Time: time.Now(), ClientIP: "203.0.113.7"}
		if err := c.Notify(t.Context(), n); err != nil {
			t.Fatalf("Notify(%s, %s) = %v", tt.event, tt.factor, err)
		}
	}
	msgs := s.Messages()
	if len(msgs) != len(tests) {
		t.Fatalf("server got %d messages, want %d", len(msgs), len(tests))
	}
	for i, tt := range tests {
		want := tt.want + " If this was not you, contact the administrator now."
		if msgs[i].Body != want || msgs[i].To != testTo {
			t.Errorf("notice %d = %+v\nwant body %q", i, msgs[i], want)
		}
		if len(msgs[i].Body) > 160 {
			t.Errorf("notice %d is %d characters, more than one segment", i, len(msgs[i].Body))
		}
	}
	for _, r := range rec.get() {
		if !r.OK || r.ChallengeID != "" || r.User != "john" || r.To != testMasked {
			t.Errorf("result = %+v", r)
		}
	}

	// Refused before the provider: an unknown event or factor, a bad
	// number, a country that is not allowed.
	c.allowed = []string{"US"}
	before := s.Requests()
	for _, n := range []authenticators.Notice{
		{To: testTo, Event: "password_changed"},
		{To: testTo, Event: authenticators.NoticeFactorAdded, Factor: "fingerprint"},
		{To: "+12015550123\r\n", Event: authenticators.NoticeRecoveryCodeUsed},
		{To: "+46701234567", Event: authenticators.NoticeRecoveryCodeUsed},
	} {
		if err := c.Notify(t.Context(), n); !errors.Is(err, authenticators.ErrDeliveryFailed) {
			t.Errorf("Notify(%+v) = %v, want ErrDeliveryFailed", n, err)
		}
	}
	if s.Requests() != before {
		t.Errorf("refused notices reached the provider")
	}
	if err := new(Config).Notify(t.Context(), authenticators.Notice{To: testTo, Event: authenticators.NoticeRecoveryCodeUsed}); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Errorf("Notify on an unprovisioned config = %v", err)
	}
}

func TestNoticeSite(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "",
		"  app.example.com  ":     "app.example.com",
		"evil\r\nline":            "evil  line",
		strings.Repeat("a", 100):  strings.Repeat("a", 57) + "...",
		"\xffapp.example.com\x00": "app.example.com",
	} {
		if got := noticeSite(in); got != want {
			t.Errorf("noticeSite(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCleanupStopsWorkers(t *testing.T) {
	s := twiliotest.NewServer(t)
	c := &Config{ProviderRaw: twilioJSON(s, nil), Delivery: &delivery.Config{Workers: 4}}
	provision(t, c, nil)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(); err != nil {
		t.Fatal(err)
	}
	if stacks := ourGoroutines(5 * time.Second); stacks != "" {
		t.Errorf("queue goroutines still running:\n%s", stacks)
	}
	if err := c.Cleanup(); err != nil {
		t.Errorf("second Cleanup() = %v", err)
	}
	if err := c.Deliver(t.Context(), testMessage()); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Errorf("Deliver after Cleanup = %v, want ErrDeliveryFailed", err)
	}
	if err := new(Config).Cleanup(); err != nil {
		t.Errorf("Cleanup() on a zero Config = %v", err)
	}
}

// customProvider is a third-party provider: a module registered in the
// mfa.sms_providers namespace from outside this package's own modules.
type customProvider struct {
	Prefix string `json:"prefix,omitempty"`
	sent   chan Text
}

var customSent = make(chan Text, 10)

func (customProvider) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  ProviderNamespace + ".test_custom",
		New: func() caddy.Module { return &customProvider{sent: customSent} },
	}
}

func (p *customProvider) Send(_ context.Context, t Text) error {
	if strings.HasSuffix(t.To, "99") {
		return Permanent(errors.New("custom: number " + t.To + " is blocked"))
	}
	t.Body = p.Prefix + t.Body
	p.sent <- t
	return nil
}

func init() {
	caddy.RegisterModule(customProvider{})
}

func TestThirdPartyProvider(t *testing.T) {
	raw, _ := json.Marshal(map[string]any{"provider": "test_custom", "prefix": "[X] "})
	c := &Config{ProviderRaw: raw, Message: "Code %s"}
	rec := provision(t, c, nil)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	select {
	case got := <-customSent:
		if got.To != testTo || got.Body != "[X] Code "+testCode || got.Code != testCode {
			t.Errorf("sent %+v", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing sent")
	}
	m := testMessage()
	m.To = "+12015550199"
	if err := c.Deliver(t.Context(), m); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Fatalf("Deliver(blocked) = %v", err)
	}
	r := rec.get()
	if len(r) != 2 || !r[1].Permanent || r[1].Attempt != 1 || !strings.Contains(r[1].Error, "+1*******99 is blocked") {
		t.Errorf("results = %+v", r)
	}
}

func TestIsPermanent(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("connection reset"), false},
		{context.DeadlineExceeded, false},
		{Permanent(errors.New("x")), true},
		{fmt.Errorf("wrapped: %w", Permanent(errors.New("x"))), true},
		{&StatusError{StatusCode: 400}, true},
		{&StatusError{StatusCode: 401}, true},
		{&StatusError{StatusCode: 404}, true},
		{&StatusError{StatusCode: 302}, true},
		{&StatusError{StatusCode: 408}, false},
		{&StatusError{StatusCode: 429}, false},
		{&StatusError{StatusCode: 500}, false},
		{&StatusError{StatusCode: 503}, false},
		{fmt.Errorf("twilio: %w", &StatusError{StatusCode: 400}), true},
	}
	for _, tt := range tests {
		if got := IsPermanent(tt.err); got != tt.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
	e := &StatusError{Provider: "twilio", StatusCode: 400, Code: "21211", Message: "Invalid 'To' Phone Number"}
	if got := e.Error(); got != "twilio: HTTP 400 Bad Request, error 21211: Invalid 'To' Phone Number" {
		t.Errorf("Error() = %q", got)
	}
}
