package email

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

const (
	testTo   = "john.doe@example.com"
	testCode = "493817"
	testFrom = "Example <noreply@example.com>"
)

// recorder collects delivery results.
type recorder struct {
	mu      sync.Mutex
	results []authenticators.DeliveryResult
	added   chan struct{} // closed and replaced on each add
}

func (r *recorder) add(res authenticators.DeliveryResult) {
	r.mu.Lock()
	r.results = append(r.results, res)
	if r.added != nil {
		close(r.added)
		r.added = nil
	}
	r.mu.Unlock()
}

// wait waits until at least n results were recorded, at most 10 seconds,
// and returns the results.
func (r *recorder) wait(n int) []authenticators.DeliveryResult {
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if len(r.results) >= n {
			defer r.mu.Unlock()
			return append([]authenticators.DeliveryResult(nil), r.results...)
		}
		if r.added == nil {
			r.added = make(chan struct{})
		}
		added := r.added
		r.mu.Unlock()
		select {
		case <-added:
		case <-deadline.C:
			return r.get()
		}
	}
}

func (r *recorder) get() []authenticators.DeliveryResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]authenticators.DeliveryResult(nil), r.results...)
}

// smtpJSON is the JSON of an smtp transport for s.
func smtpJSON(host string, port int, extra map[string]any) json.RawMessage {
	m := map[string]any{"transport": "smtp", "host": host, "port": port}
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

// provision provisions c with a quiet logger (unless c.ch.Logger is set) and
// one-millisecond backoff, and cleans it up when the test ends.
func provision(t *testing.T, c *Config) *recorder {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if c.ch.Logger == nil {
		c.ch.Logger = zap.NewNop()
	}
	if c.ch.Backoff == 0 {
		c.ch.Backoff = time.Millisecond
	}
	rec := new(recorder)
	if err := c.Provision(ctx, rec.add); err != nil {
		t.Fatalf("Provision() = %v", err)
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
		TTL:         10 * time.Minute,
		Site:        "app.example.com",
	}
}

// parsedMail is a received message, decoded.
type parsedMail struct {
	header mail.Header
	text   string
	html   string
}

// parseMail reads raw as RFC 5322 and decodes its text and HTML parts,
// whatever their transfer encoding.
func parseMail(t *testing.T, raw []byte) parsedMail {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("reading message: %v\n%s", err, raw)
	}
	p := parsedMail{header: m.Header}
	mediaType, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("content type: %v", err)
	}
	if mediaType != "multipart/alternative" {
		t.Fatalf("content type %q, want multipart/alternative", mediaType)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		part, err := mr.NextPart() // decodes quoted-printable itself
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading part: %v", err)
		}
		var body io.Reader = part
		if strings.EqualFold(part.Header.Get("Content-Transfer-Encoding"), "base64") {
			body = base64.NewDecoder(base64.StdEncoding, part)
		}
		b, err := io.ReadAll(body)
		if err != nil {
			t.Fatalf("decoding part: %v", err)
		}
		ct, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		switch ct {
		case "text/plain":
			p.text = string(b)
		case "text/html":
			p.html = string(b)
		default:
			t.Errorf("unexpected part %q", ct)
		}
	}
	return p
}

// checkOneMessage checks that msgs holds one message for testTo with the
// code in both parts, and returns it decoded.
func checkOneMessage(t *testing.T, msgs []smtptest.Message) parsedMail {
	t.Helper()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if len(m.To) != 1 || m.To[0] != testTo {
		t.Fatalf("envelope recipients = %q, want [%s]", m.To, testTo)
	}
	if m.From != "noreply@example.com" {
		t.Errorf("envelope sender = %q", m.From)
	}
	p := parseMail(t, m.Data)
	to, err := p.header.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Address != testTo {
		t.Errorf("To header = %v, %v", to, err)
	}
	for _, h := range []string{"Cc", "Bcc"} {
		if v := p.header.Get(h); v != "" {
			t.Errorf("%s header = %q", h, v)
		}
	}
	if !strings.Contains(p.text, testCode) {
		t.Errorf("text part lacks the code:\n%s", p.text)
	}
	if !strings.Contains(p.html, testCode) {
		t.Errorf("html part lacks the code:\n%s", p.html)
	}
	if !strings.Contains(p.text, "10 minutes") {
		t.Errorf("text part lacks the expiry:\n%s", p.text)
	}
	return p
}

func TestSendOverSTARTTLSWithAuth(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{Username: "mailer", Password: "s3cret pass"})
	t.Setenv("TEST_SMTP_PASSWORD", "s3cret pass")
	c := &Config{
		TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{
			"tls": "starttls", "username": "mailer", "password": "{env.TEST_SMTP_PASSWORD}", "ca_file": s.CAFile,
		}),
		From: testFrom,
	}
	rec := provision(t, c)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	msgs := s.Messages()
	p := checkOneMessage(t, msgs)
	if !msgs[0].TLS || msgs[0].User != "mailer" {
		t.Errorf("TLS = %v, user = %q; want TLS and AUTH", msgs[0].TLS, msgs[0].User)
	}
	if got := p.header.Get("Subject"); got != "Your sign-in code for app.example.com" {
		t.Errorf("Subject = %q", got)
	}
	results := rec.get()
	if len(results) != 1 || !results[0].OK || results[0].To != "j***@e***.com" || results[0].Method != "email" || results[0].ChallengeID != "chal-1" {
		t.Errorf("results = %+v", results)
	}
}

func TestSendOverImplicitTLS(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{Username: "mailer", Password: "pw"})
	c := &Config{
		TransportRaw: smtpJSON(s.Host, s.TLSPort, map[string]any{
			"tls": "implicit", "username": "mailer", "password": "pw", "ca_file": s.CAFile,
		}),
		From: testFrom,
	}
	provision(t, c)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	msgs := s.Messages()
	checkOneMessage(t, msgs)
	if !msgs[0].TLS || msgs[0].User != "mailer" {
		t.Errorf("TLS = %v, user = %q", msgs[0].TLS, msgs[0].User)
	}
}

func TestSendRequiresSTARTTLS(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{NoSTARTTLS: true})
	c := &Config{TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}), From: testFrom}
	rec := provision(t, c)
	err := c.Deliver(t.Context(), testMessage())
	if !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("server got %d messages", n)
	}
	if r := rec.get(); len(r) != 1 || !r[0].Permanent {
		t.Errorf("results = %+v, want one permanent failure", r)
	}
}

func TestConnectionReused(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{Username: "mailer", Password: "pw"})
	c := &Config{
		TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"username": "mailer", "password": "pw", "ca_file": s.CAFile}),
		From:         testFrom,
		Delivery:     &delivery.Config{Workers: 1},
	}
	provision(t, c)
	for i := range 2 {
		m := testMessage()
		m.ChallengeID = strconv.Itoa(i)
		if err := c.Deliver(t.Context(), m); err != nil {
			t.Fatalf("Deliver() #%d = %v", i, err)
		}
	}
	if n := len(s.Messages()); n != 2 {
		t.Fatalf("server got %d messages, want 2", n)
	}
	if s.Connections() != 1 || s.Auths() != 1 {
		t.Errorf("connections = %d, auths = %d; want 1 and 1", s.Connections(), s.Auths())
	}
}

// keptConnection provisions one SMTP delivery worker against a test
// server and delivers a first message, so the worker holds a connection.
func keptConnection(t *testing.T) (*smtptest.Server, *Config, *recorder) {
	t.Helper()
	s := smtptest.NewServer(t, smtptest.Options{})
	c := &Config{
		TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}),
		From:         testFrom,
		Delivery:     &delivery.Config{Workers: 1},
	}
	rec := provision(t, c)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatal(err)
	}
	return s, c, rec
}

func TestConnectionRedialAfterServerDrop(t *testing.T) {
	s, c, rec := keptConnection(t)
	// The server drops the kept connection; the next message notices it
	// (MAIL FROM gets no reply) and redials within the same attempt.
	s.DropConnections()
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages()); n != 2 {
		t.Fatalf("server got %d messages, want 2", n)
	}
	if s.Connections() != 2 {
		t.Errorf("connections = %d, want 2", s.Connections())
	}
	for _, r := range rec.get() {
		if !r.OK || r.Attempt != 1 {
			t.Errorf("result %+v, want success on the first attempt", r)
		}
	}
}

// A refusal of MAIL FROM on a kept connection is the server's answer, not
// a lost connection: the message is not sent again on a new connection.
func TestMailFromRefusalOnKeptConnectionNotRedialed(t *testing.T) {
	s, c, rec := keptConnection(t)
	s.Reject(smtptest.StageMail, 550, 1)
	if err := c.Deliver(t.Context(), testMessage()); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
	}
	if s.Connections() != 1 {
		t.Errorf("connections = %d, want 1 (no redial after a refusal)", s.Connections())
	}
	if r := rec.get(); len(r) != 2 || !r[1].Permanent {
		t.Errorf("results = %+v, want a permanent failure second", r)
	}
}

func TestIdleConnectionClosed(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{})
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	tr := &SMTP{Host: s.Host, Port: s.Port, CAFile: s.CAFile}
	if err := tr.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	c := &Config{TransportRaw: json.RawMessage(`{"transport":"outbox","dir":"unused"}`), From: testFrom}
	c.tmpl, _ = loadTemplates(nil)
	c.from, _ = parseFrom(testFrom)
	msg, err := c.message(testMessage(), testTo, Mask(testTo), i18n.Builtin().English())
	if err != nil {
		t.Fatal(err)
	}
	worker, err := tr.NewWorker(zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	w := worker.(*smtpWorker)
	defer w.Close()
	if err := w.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	armed := w.idleTimer != nil && w.connected
	w.mu.Unlock()
	if !armed {
		t.Fatal("no idle timer armed after a send")
	}
	w.closeIdle() // what the idle timer does when it fires
	w.mu.Lock()
	connected := w.connected
	w.mu.Unlock()
	if connected {
		t.Fatal("still connected after closeIdle")
	}
	if err := w.Send(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	if s.Connections() != 2 || len(s.Messages()) != 2 {
		t.Errorf("connections = %d, messages = %d; want 2 and 2", s.Connections(), len(s.Messages()))
	}
}

func TestHeaderInjectionAddsNoRecipient(t *testing.T) {
	evil := []string{
		"evil\r\nBcc: evil@attacker.example",
		"evil\nBcc: evil@attacker.example",
		"evil\rBcc: evil@attacker.example",
		"evil%0d%0aBcc: evil@attacker.example",
		"Bcc: evil@attacker.example",
		"=?utf-8?q?x=0D=0ABcc:_evil@attacker.example?=",
		"=?utf-8?b?eA0KQmNjOiBldmlsQGF0dGFja2VyLmV4YW1wbGU=?=",
		"x\r\n\r\nbody injection",
		"x\u2028Bcc: evil@attacker.example",
		"x\x00Bcc: evil@attacker.example",
	}
	s := smtptest.NewServer(t, smtptest.Options{})
	c := &Config{
		TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}),
		From:         testFrom,
		Templates:    &Templates{Subject: "{{.Site}} / {{.User}} / Your code"},
	}
	provision(t, c)
	allowed := map[string]bool{
		"Date": true, "From": true, "To": true, "Subject": true, "Message-Id": true,
		"Mime-Version": true, "Content-Type": true, "Auto-Submitted": true, "X-Auto-Response-Suppress": true,
	}
	for i, e := range evil {
		m := testMessage()
		m.Site = e
		m.User = e
		if err := c.Deliver(t.Context(), m); err != nil {
			t.Fatalf("Deliver(%q) = %v", e, err)
		}
		msgs := s.Messages()
		if len(msgs) != i+1 {
			t.Fatalf("server got %d messages, want %d", len(msgs), i+1)
		}
		got := msgs[i]
		if len(got.To) != 1 || got.To[0] != testTo {
			t.Errorf("%q: envelope recipients = %q", e, got.To)
		}
		p := parseMail(t, got.Data)
		for k := range p.header {
			if !allowed[k] {
				t.Errorf("%q: unexpected header %s: %q", e, k, p.header[k])
			}
		}
		if n := len(p.header["Subject"]); n != 1 {
			t.Errorf("%q: %d Subject headers", e, n)
		}
		if to, err := p.header.AddressList("To"); err != nil || len(to) != 1 {
			t.Errorf("%q: To = %v, %v", e, to, err)
		}
		if !strings.Contains(p.text, testCode) {
			t.Errorf("%q: code missing from text part", e)
		}
	}

	// Addresses carrying the same tricks are refused before anything is sent.
	for _, addr := range []string{
		testTo + "\r\nBcc: evil@attacker.example",
		testTo + "%0d%0aBcc: evil@attacker.example",
		testTo + ", evil@attacker.example",
		"Evil <evil@attacker.example>, " + testTo,
		"=?utf-8?q?evil=40attacker.example?=@example.com",
		"list: " + testTo + ", evil@attacker.example;",
	} {
		if _, err := ParseAddress(addr); err == nil {
			t.Errorf("ParseAddress(%q) accepted", addr)
		}
		m := testMessage()
		m.To = addr
		if err := c.Deliver(t.Context(), m); !errors.Is(err, authenticators.ErrDeliveryFailed) {
			t.Errorf("Deliver(to %q) = %v, want ErrDeliveryFailed", addr, err)
		}
	}
	if n := len(s.Messages()); n != len(evil) {
		t.Errorf("server got %d messages, want %d", n, len(evil))
	}
}

func TestTransientFailureIsRetried(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{})
	s.Reject(smtptest.StageRcpt, 451, 1)
	c := &Config{TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}), From: testFrom}
	rec := provision(t, c)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	checkOneMessage(t, s.Messages())
	r := rec.get()
	if len(r) != 2 || r[0].OK || r[0].Permanent || r[0].Attempt != 1 || !r[1].OK || r[1].Attempt != 2 {
		t.Fatalf("results = %+v, want a transient failure then success", r)
	}
	if !strings.Contains(r[0].Error, "451") || strings.Contains(r[0].Error, testTo) {
		t.Errorf("first error = %q, want the 451 reply with the address masked", r[0].Error)
	}
}

func TestPermanentFailureReachesCaller(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{})
	s.Reject(smtptest.StageRcpt, 550, -1)
	c := &Config{TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}), From: testFrom}
	rec := provision(t, c)
	err := c.Deliver(t.Context(), testMessage())
	if !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
	}
	if strings.Contains(err.Error(), testTo) || strings.Contains(err.Error(), testCode) {
		t.Errorf("error reveals the address or code: %v", err)
	}
	r := rec.get()
	if len(r) != 1 || r[0].OK || !r[0].Permanent || !strings.Contains(r[0].Error, "550") {
		t.Fatalf("results = %+v, want one permanent 550 failure", r)
	}
	if strings.Contains(r[0].Error, testTo) {
		t.Errorf("report reveals the address: %q", r[0].Error)
	}
}

func TestServerDownBoundedLatency(t *testing.T) {
	addr := smtptest.ClosedAddr(t)
	host, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	const wait = time.Second

	t.Run("retries exhausted", func(t *testing.T) {
		c := &Config{
			TransportRaw: smtpJSON(host, port, nil),
			From:         testFrom,
			Delivery:     &delivery.Config{Wait: caddy.Duration(wait)},
		}
		rec := provision(t, c)
		start := time.Now()
		err := c.Deliver(t.Context(), testMessage())
		if elapsed := time.Since(start); elapsed > wait+500*time.Millisecond {
			t.Errorf("Deliver took %v", elapsed)
		}
		if !errors.Is(err, authenticators.ErrDeliveryFailed) {
			t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
		}
		r := rec.get()
		if len(r) != 4 || !r[3].Permanent || r[0].Permanent {
			t.Fatalf("results = %+v, want 3 transient failures and a final one", r)
		}
	})

	t.Run("still retrying", func(t *testing.T) {
		c := &Config{
			TransportRaw: smtpJSON(host, port, nil),
			From:         testFrom,
			Delivery:     &delivery.Config{Wait: caddy.Duration(200 * time.Millisecond)},
			ch:           delivery.Channel[*Message]{Backoff: time.Hour},
		}
		rec := provision(t, c)
		start := time.Now()
		if err := c.Deliver(t.Context(), testMessage()); err != nil {
			t.Fatalf("Deliver() = %v, want nil while retrying", err)
		}
		if elapsed := time.Since(start); elapsed > 700*time.Millisecond {
			t.Errorf("Deliver took %v", elapsed)
		}
		r := rec.get()
		if len(r) != 1 || r[0].OK || r[0].Permanent || r[0].Error == "" {
			t.Fatalf("results = %+v, want one transient failure", r)
		}
	})
}

func TestSlowServerTimesOut(t *testing.T) {
	const timeout = 300 * time.Millisecond
	check := func(t *testing.T, host string, port int, extra map[string]any) {
		t.Helper()
		opts := map[string]any{"timeout": timeout.String()}
		for k, v := range extra {
			opts[k] = v
		}
		c := &Config{
			TransportRaw: smtpJSON(host, port, opts),
			From:         testFrom,
			Delivery:     &delivery.Config{Retries: -1},
		}
		rec := provision(t, c)
		start := time.Now()
		err := c.Deliver(t.Context(), testMessage())
		elapsed := time.Since(start)
		if !errors.Is(err, authenticators.ErrDeliveryFailed) {
			t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
		}
		if elapsed < timeout || elapsed > timeout+time.Second {
			t.Errorf("Deliver took %v, want about %v", elapsed, timeout)
		}
		r := rec.get()
		if len(r) != 1 || !strings.Contains(r[0].Error, "timeout") || r[0].Latency < timeout {
			t.Fatalf("results = %+v, want one timeout", r)
		}
	}

	t.Run("no greeting", func(t *testing.T) {
		host, portStr, _ := net.SplitHostPort(smtptest.Hang(t))
		port, _ := strconv.Atoi(portStr)
		check(t, host, port, nil)
	})
	t.Run("no answer to DATA", func(t *testing.T) {
		s := smtptest.NewServer(t, smtptest.Options{})
		s.Hold(smtptest.StageData, -1)
		check(t, s.Host, s.Port, map[string]any{"ca_file": s.CAFile})
	})
}

func TestTLSVerificationFailure(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{})
	for _, tt := range []struct {
		mode string
		port int
	}{{"starttls", s.Port}, {"implicit", s.TLSPort}} {
		t.Run(tt.mode, func(t *testing.T) {
			c := &Config{TransportRaw: smtpJSON(s.Host, tt.port, map[string]any{"tls": tt.mode}), From: testFrom}
			rec := provision(t, c)
			err := c.Deliver(t.Context(), testMessage())
			if !errors.Is(err, authenticators.ErrDeliveryFailed) {
				t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
			}
			r := rec.get()
			if len(r) != 1 || !r[0].Permanent || !strings.Contains(r[0].Error, "certificate") {
				t.Fatalf("results = %+v, want one permanent certificate failure", r)
			}
		})
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("server got %d messages", n)
	}
}

func TestOutboxWritesEml(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	raw, _ := json.Marshal(map[string]any{"transport": "outbox", "dir": dir})
	c := &Config{TransportRaw: raw}
	provision(t, c)
	if c.From != DefaultOutboxFrom {
		t.Errorf("From = %q, want the outbox default", c.From)
	}
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
		if !strings.HasSuffix(e.Name(), ".eml") || strings.HasPrefix(e.Name(), ".") {
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
		p := parseMail(t, raw)
		to, err := p.header.AddressList("To")
		if err != nil || len(to) != 1 || to[0].Address != testTo {
			t.Errorf("To = %v, %v", to, err)
		}
		from, err := p.header.AddressList("From")
		if err != nil || len(from) != 1 || from[0].Address != "noreply@localhost" {
			t.Errorf("From = %v, %v", from, err)
		}
		if !strings.Contains(p.text, testCode) || !strings.Contains(p.html, testCode) {
			t.Errorf("code missing from %s", e.Name())
		}
	}
	if entries[0].Name() >= entries[1].Name() {
		t.Errorf("names do not sort by time: %s, %s", entries[0].Name(), entries[1].Name())
	}
}

func TestTranscriptMasksCode(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{Username: "mailer", Password: "pw-secret"})
	core, logs := observer.New(zapcore.DebugLevel)
	c := &Config{
		TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"username": "mailer", "password": "pw-secret", "ca_file": s.CAFile}),
		From:         testFrom,
		ch:           delivery.Channel[*Message]{Logger: zap.New(core)},
	}
	provision(t, c)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	_ = c.Cleanup() // QUIT is in the transcript too

	// The code is not sent in a command, so also feed the adapter a server
	// line that echoes it, as a misbehaving relay might.
	tr := &transcript{logger: zap.New(core)}
	tr.setCode(testCode)
	tr.Debugf(goMailLog("250 queued %s for <%s>", testCode, testTo))

	var transcript []string
	for _, e := range logs.All() {
		enc, err := zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig()).EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		line := enc.String()
		for _, secret := range []string{testCode, testTo, "noreply@example.com", "pw-secret"} {
			if strings.Contains(line, secret) {
				t.Errorf("log entry reveals %q: %s", secret, line)
			}
		}
		if e.Message == "smtp transcript" {
			transcript = append(transcript, e.ContextMap()["line"].(string))
		}
	}
	all := strings.Join(transcript, "\n")
	// go-smtp offers CHUNKING: the message goes with BDAT, and the
	// transcript says that it is left out.
	for _, want := range []string{"EHLO", "STARTTLS", "AUTH", "MAIL FROM:<n***@e***.com>", "RCPT TO:<j***@e***.com>", "BDAT ", "(the message, ", "not logged)", "QUIT", "******"} {
		if !strings.Contains(all, want) {
			t.Errorf("transcript lacks %q:\n%s", want, all)
		}
	}
}

func TestCleanupStopsWorkers(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{})
	c := &Config{
		TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}),
		From:         testFrom,
		Delivery:     &delivery.Config{Workers: 4},
	}
	provision(t, c)
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatal(err)
	}
	if err := c.Cleanup(); err != nil {
		t.Fatal(err)
	}
	// Cleanup waited for the workers, which have run their last deferred
	// call; give the scheduler a moment to retire them, then none of their
	// goroutines may be left.
	if stacks := ourGoroutines(5 * time.Second); stacks != "" {
		t.Errorf("worker goroutines still running:\n%s", stacks)
	}
	if err := c.Cleanup(); err != nil {
		t.Errorf("second Cleanup() = %v", err)
	}
	if err := c.Deliver(t.Context(), testMessage()); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Errorf("Deliver after Cleanup = %v, want ErrDeliveryFailed", err)
	}
	// The server saw the session end.
	s.Close()

	// Cleanup is safe on a config that was never or badly provisioned.
	if err := new(Config).Cleanup(); err != nil {
		t.Errorf("Cleanup() on a zero Config = %v", err)
	}
	bad := &Config{TransportRaw: json.RawMessage(`{"transport":"smtp","host":"x","port":25}`)} // no from
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	bad.ch.Logger = zap.NewNop()
	if err := bad.Provision(ctx, nil); err == nil {
		t.Fatal("Provision without from succeeded")
	}
	if err := bad.Cleanup(); err != nil {
		t.Errorf("Cleanup() after failed Provision = %v", err)
	}
}

func TestProvisionDefaults(t *testing.T) {
	raw, _ := json.Marshal(map[string]any{"transport": "outbox", "dir": t.TempDir()})
	c := &Config{TransportRaw: raw, Limits: authenticators.Limits{Throttle: &authenticators.Throttle{PerHour: -1}}}
	provision(t, c)
	if c.Send != "code" || c.CodeLength != 6 || time.Duration(c.CodeTTL) != 10*time.Minute || c.MaxAttempts != 3 || c.MaxSends != 3 {
		t.Errorf("limits = %+v", c.Limits)
	}
	want := authenticators.Throttle{PerHour: -1, Per5m: 20, PerIPPerHour: 10, PerUserPerHour: 5, PerDestinationPerHour: 5, Cooldown: caddy.Duration(30 * time.Second)}
	if *c.Throttle != want {
		t.Errorf("throttle = %+v, want %+v", *c.Throttle, want)
	}
	if d := c.Delivery; d.Workers != 2 || d.Retries != 3 || time.Duration(d.Wait) != 5*time.Second {
		t.Errorf("delivery = %+v", *d)
	}
	if c.Method() != "email" || c.Mask(testTo) != "j***@e***.com" {
		t.Errorf("Method() = %q, Mask() = %q", c.Method(), c.Mask(testTo))
	}
}

func TestValidate(t *testing.T) {
	smtpRaw := json.RawMessage(`{"transport":"smtp","host":"smtp.example.com"}`)
	outboxRaw := json.RawMessage(`{"transport":"outbox","dir":"x"}`)
	tmplDir := t.TempDir()
	badTmpl := filepath.Join(tmplDir, "bad.txt")
	_ = os.WriteFile(badTmpl, []byte("{{.Nope}}"), 0o600)
	goodTmpl := filepath.Join(tmplDir, "good.html")
	_ = os.WriteFile(goodTmpl, []byte("<p>{{.Code}}</p>"), 0o600)
	tests := []struct {
		name string
		c    Config
		ok   bool
	}{
		{"minimal smtp", Config{TransportRaw: smtpRaw, From: testFrom}, true},
		{"outbox without from", Config{TransportRaw: outboxRaw}, true},
		{"smtp without from", Config{TransportRaw: smtpRaw}, false},
		{"from with two addresses", Config{TransportRaw: smtpRaw, From: "a@example.com, b@example.com"}, false},
		{"from with CRLF", Config{TransportRaw: smtpRaw, From: "A <a@example.com>\r\nBcc: x@y.z"}, false},
		{"from group", Config{TransportRaw: smtpRaw, From: "g: a@example.com;"}, false},
		{"from with quoted colon", Config{TransportRaw: smtpRaw, From: `"Example: Sign-in, Team" <a@example.com>`}, true},
		{"from list", Config{TransportRaw: smtpRaw, From: "A <a@example.com>, B <b@example.com>"}, false},
		{"send link", Config{TransportRaw: smtpRaw, From: testFrom, Send: "link"}, true},
		{"send other", Config{TransportRaw: smtpRaw, From: testFrom, Send: "sms"}, false},
		{"link ttl 1h", Config{TransportRaw: smtpRaw, From: testFrom, Send: "link", LinkTTL: caddy.Duration(time.Hour)}, true},
		{"link ttl 1h1s", Config{TransportRaw: smtpRaw, From: testFrom, Send: "link", LinkTTL: caddy.Duration(time.Hour + time.Second)}, false},
		{"link ttl negative", Config{TransportRaw: smtpRaw, From: testFrom, LinkTTL: -1}, false},
		{"link mode with a template without the link", Config{TransportRaw: smtpRaw, From: testFrom, Send: "link", Templates: &Templates{HTMLFile: goodTmpl}}, false},
		{"code mode with a template without the link", Config{TransportRaw: smtpRaw, From: testFrom, Send: "code", Templates: &Templates{HTMLFile: goodTmpl}}, true},
		{"code length 3", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{CodeLength: 3}}, false},
		{"code length 4", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{CodeLength: 4}}, true},
		{"code length 10", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{CodeLength: 10}}, true},
		{"code length 11", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{CodeLength: 11}}, false},
		{"code ttl 10m", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{CodeTTL: caddy.Duration(10 * time.Minute)}}, true},
		{"code ttl 10m1s", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{CodeTTL: caddy.Duration(10*time.Minute + time.Second)}}, false},
		{"code ttl negative", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{CodeTTL: -1}}, false},
		{"max attempts 100", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{MaxAttempts: 100}}, true},
		{"max attempts 101", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{MaxAttempts: 101}}, false},
		{"max attempts negative", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{MaxAttempts: -1}}, false},
		{"max sends 101", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{MaxSends: 101}}, false},
		{"max sends negative", Config{TransportRaw: smtpRaw, From: testFrom, Limits: authenticators.Limits{MaxSends: -2}}, false},
		{"bad subject template", Config{TransportRaw: smtpRaw, From: testFrom, Templates: &Templates{Subject: "{{.Code"}}, false},
		{"unknown field in template", Config{TransportRaw: smtpRaw, From: testFrom, Templates: &Templates{TextFile: badTmpl}}, false},
		{"missing template file", Config{TransportRaw: smtpRaw, From: testFrom, Templates: &Templates{HTMLFile: filepath.Join(tmplDir, "none")}}, false},
		{"good template file", Config{TransportRaw: smtpRaw, From: testFrom, Templates: &Templates{HTMLFile: goodTmpl}}, true},
		{"too many workers", Config{TransportRaw: smtpRaw, From: testFrom, Delivery: &delivery.Config{Workers: 101}}, false},
		{"wait too long", Config{TransportRaw: smtpRaw, From: testFrom, Delivery: &delivery.Config{Wait: caddy.Duration(2 * time.Minute)}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestDeliverRefusesBadInput(t *testing.T) {
	raw, _ := json.Marshal(map[string]any{"transport": "outbox", "dir": t.TempDir()})
	c := &Config{TransportRaw: raw}
	rec := provision(t, c)
	m := testMessage()
	m.Code = ""
	if err := c.Deliver(t.Context(), m); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Errorf("Deliver without code = %v", err)
	}
	m = testMessage()
	m.To = "not an address"
	if err := c.Deliver(t.Context(), m); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Errorf("Deliver to a bad address = %v", err)
	}
	for _, r := range rec.get() {
		if !r.Permanent || strings.Contains(fmt.Sprint(r), "not an address") {
			t.Errorf("result = %+v", r)
		}
	}
	if n := len(rec.get()); n != 2 {
		t.Errorf("%d results, want 2", n)
	}
	if err := new(Config).Deliver(t.Context(), testMessage()); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Errorf("Deliver on an unprovisioned config = %v", err)
	}
}

// ourGoroutines returns the stacks of goroutines running queue or worker
// code, waiting up to timeout for them to exit.
func ourGoroutines(timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	buf := make([]byte, 1<<20)
	for {
		var found []string
		for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
			if strings.Contains(g, "authenticators/delivery.(*Queue") || strings.Contains(g, "authenticators/email.(*smtpWorker)") {
				found = append(found, g)
			}
		}
		if len(found) == 0 || time.Now().After(deadline) {
			return strings.Join(found, "\n\n")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
