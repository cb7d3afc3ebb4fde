package sms

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
)

const (
	testTo     = "+12015550123"
	testMasked = "+1*******23"
	testCode   = "493817"
	testFrom   = "+12015550100"
)

// recorder collects delivery results.
type recorder struct {
	mu      sync.Mutex
	results []authenticators.DeliveryResult
}

func (r *recorder) add(res authenticators.DeliveryResult) {
	r.mu.Lock()
	r.results = append(r.results, res)
	r.mu.Unlock()
}

func (r *recorder) get() []authenticators.DeliveryResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]authenticators.DeliveryResult(nil), r.results...)
}

// resultsText is the text of delivery results that could carry a secret
// (IDs, names, the masked address, the error), without their clock
// readings, whose digits may happen to spell a code.
func resultsText(rs []authenticators.DeliveryResult) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "%s %s %s %s %s\n", r.ChallengeID, r.Method, r.User, r.To, r.Error)
	}
	return b.String()
}

// providerJSON is the JSON of a provider module with its inline key.
func providerJSON(name string, fields map[string]any) json.RawMessage {
	m := map[string]any{"provider": name}
	for k, v := range fields {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

// twilioJSON is the JSON of a twilio provider talking to s with the
// server's credentials and testFrom; extra adds or overrides fields.
func twilioJSON(s *twiliotest.Server, extra map[string]any) json.RawMessage {
	fields := map[string]any{
		"account_sid": twiliotest.AccountSID,
		"auth_token":  twiliotest.AuthToken,
		"from":        testFrom,
		"api_url":     s.URL,
	}
	for k, v := range extra {
		if v == nil {
			delete(fields, k)
			continue
		}
		fields[k] = v
	}
	return providerJSON("twilio", fields)
}

// logs is a logger whose every entry, at any level, is kept.
type logs struct {
	logger *zap.Logger
	obs    *observer.ObservedLogs
}

func newLogs() *logs {
	core, obs := observer.New(zapcore.DebugLevel)
	return &logs{logger: zap.New(core), obs: obs}
}

// text returns every entry, message and fields, as JSON lines.
func (l *logs) text(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	enc := zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig())
	for _, e := range l.obs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(buf.Bytes())
		buf.Free()
	}
	return b.String()
}

// provision provisions c with l's logger (a quiet one when l is nil) for
// c and its provider, and one-millisecond backoff, and cleans it up when
// the test ends.
func provision(t *testing.T, c *Config, l *logs) *recorder {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	logger := zap.NewNop()
	if l != nil {
		logger = l.logger
	}
	c.ch.Logger = logger
	if c.ch.Backoff == 0 {
		c.ch.Backoff = time.Millisecond
	}
	rec := new(recorder)
	if err := c.Provision(ctx, rec.add); err != nil {
		t.Fatalf("Provision() = %v", err)
	}
	switch p := c.provider.(type) {
	case *Twilio:
		p.logger = logger
	case *Webhook:
		p.logger = logger
	}
	t.Cleanup(func() { _ = c.Cleanup() })
	return rec
}

func testMessage() authenticators.Message {
	return authenticators.Message{
		ChallengeID: "chal-1",
		User:        "john",
		To:          testTo,
		Code:        testCode,
		TTL:         time.Minute,
		Site:        "app.example.com",
	}
}

// checkSecrets fails the test when any of the texts contains a secret.
func checkSecrets(t *testing.T, where string, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s reveals %q:\n%s", where, s, text)
		}
	}
}

// ourGoroutines returns the stacks of goroutines running queue code,
// waiting up to timeout for them to exit.
func ourGoroutines(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1<<20)
	for {
		var found []string
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "authenticators/delivery.(*Queue") {
				found = append(found, g)
			}
		}
		if len(found) == 0 || time.Now().After(deadline) {
			return strings.Join(found, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
