package email

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// noticeTime is when the test notices happened; in UTC it is
// "2025-03-04 04:06:07 UTC".
var noticeTime = time.Date(2025, 3, 4, 5, 6, 7, 0, time.FixedZone("CET", 3600))

const noticeTimeUTC = "2025-03-04 04:06:07 UTC"

func testNotice(event, factor string) authenticators.Notice {
	return authenticators.Notice{
		User:     "john",
		To:       testTo,
		Site:     "app.example.com",
		Event:    event,
		Factor:   factor,
		Time:     noticeTime,
		ClientIP: "203.0.113.7",
	}
}

// outboxConfig is a Config with the outbox transport writing to dir.
func outboxConfig(dir string) *Config {
	raw, _ := json.Marshal(map[string]any{"transport": "outbox", "dir": dir})
	return &Config{TransportRaw: raw}
}

func TestNotifyEvents(t *testing.T) {
	const site = "app.example.com"
	tests := []struct {
		name    string
		notice  authenticators.Notice
		subject string
		what    string
	}{
		{
			name:    "authenticator app added",
			notice:  testNotice(authenticators.NoticeFactorAdded, "totp"),
			subject: "Security notice: an authenticator app was added to your account on " + site,
			what:    "An authenticator app was added to your account on " + site + ".",
		},
		{
			name:    "email address added",
			notice:  testNotice(authenticators.NoticeFactorAdded, "email"),
			subject: "Security notice: an email address was added to your account on " + site,
			what:    "An email address was added to your account on " + site + ".",
		},
		{
			name:    "phone number added",
			notice:  testNotice(authenticators.NoticeFactorAdded, "sms"),
			subject: "Security notice: a phone number was added to your account on " + site,
			what:    "A phone number was added to your account on " + site + ".",
		},
		{
			name:    "authenticator app removed",
			notice:  testNotice(authenticators.NoticeFactorRemoved, "totp"),
			subject: "Security notice: an authenticator app was removed from your account on " + site,
			what:    "An authenticator app was removed from your account on " + site + ".",
		},
		{
			name:    "phone number removed",
			notice:  testNotice(authenticators.NoticeFactorRemoved, "sms"),
			subject: "Security notice: a phone number was removed from your account on " + site,
			what:    "A phone number was removed from your account on " + site + ".",
		},
		{
			name:    "passkey removed",
			notice:  testNotice(authenticators.NoticeFactorRemoved, "passkey"),
			subject: "Security notice: a passkey was removed from your account on " + site,
			what:    "A passkey was removed from your account on " + site + ".",
		},
		{
			name:    "recovery code used",
			notice:  testNotice(authenticators.NoticeRecoveryCodeUsed, "recovery"),
			subject: "Security notice: a recovery code was used to sign in to your account on " + site,
			what:    "A recovery code was used to sign in to your account on " + site + ". That code cannot be used again.",
		},
		{
			name:    "recovery codes renewed",
			notice:  testNotice(authenticators.NoticeRecoveryCodesRenewed, ""),
			subject: "Security notice: new recovery codes were generated for your account on " + site,
			what:    "New recovery codes were generated for your account on " + site + ". The old codes no longer work.",
		},
		{
			name: "no site, no client IP",
			notice: func() authenticators.Notice {
				n := testNotice(authenticators.NoticeFactorAdded, "totp")
				n.Site, n.ClientIP = "", ""
				return n
			}(),
			subject: "Security notice: an authenticator app was added to your account on this site",
			what:    "An authenticator app was added to your account on this site.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := smtptest.NewServer(t, smtptest.Options{})
			c := &Config{TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}), From: testFrom}
			rec := provision(t, c)
			if err := c.Notify(t.Context(), tt.notice); err != nil {
				t.Fatalf("Notify() = %v", err)
			}

			msgs := s.Messages()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages, want 1", len(msgs))
			}
			if len(msgs[0].To) != 1 || msgs[0].To[0] != testTo {
				t.Fatalf("envelope recipients = %q, want [%s]", msgs[0].To, testTo)
			}
			p := parseMail(t, msgs[0].Data)
			if to, err := p.header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != testTo {
				t.Errorf("To header = %v, %v", to, err)
			}
			for _, h := range []string{"Cc", "Bcc"} {
				if v := p.header.Get(h); v != "" {
					t.Errorf("%s header = %q", h, v)
				}
			}
			if got := p.header.Get("Subject"); got != tt.subject {
				t.Errorf("Subject = %q, want %q", got, tt.subject)
			}
			if got := p.header.Get("Auto-Submitted"); got != "auto-generated" {
				t.Errorf("Auto-Submitted = %q", got)
			}

			wantIP := tt.notice.ClientIP != ""
			text := strings.ReplaceAll(p.text, "\r\n", "\n")
			if !strings.HasPrefix(text, tt.what+"\n") {
				t.Errorf("text part does not start with %q:\n%s", tt.what, text)
			}
			for _, want := range []string{
				"Account: john\n",
				"When: " + noticeTimeUTC + "\n",
				"If this was not you, contact the administrator now.",
			} {
				if !strings.Contains(text, want) {
					t.Errorf("text part lacks %q:\n%s", want, text)
				}
			}
			if got := strings.Contains(text, "IP address: 203.0.113.7\n"); got != wantIP {
				t.Errorf("text part shows the IP address: %v, want %v:\n%s", got, wantIP, text)
			}
			for _, want := range []string{tt.what, "john", noticeTimeUTC, "If this was not you, contact the administrator now."} {
				if !strings.Contains(p.html, want) {
					t.Errorf("html part lacks %q:\n%s", want, p.html)
				}
			}
			if got := strings.Contains(p.html, "203.0.113.7"); got != wantIP {
				t.Errorf("html part shows the IP address: %v, want %v", got, wantIP)
			}

			r := rec.get()
			if len(r) != 1 || !r[0].OK || r[0].ChallengeID != "" || r[0].To != "j***@e***.com" || r[0].User != "john" {
				t.Errorf("results = %+v", r)
			}
		})
	}
}

func TestNotifyInjection(t *testing.T) {
	evil := []string{
		"evil\r\nBcc: evil@attacker.example",
		"evil\nBcc: evil@attacker.example",
		"evil\rBcc: evil@attacker.example",
		"x\r\n\r\nbody injection",
		"x\u2028Bcc: evil@attacker.example",
		"x\x00Bcc: evil@attacker.example",
		"=?utf-8?q?x=0D=0ABcc:_evil@attacker.example?=",
		"<script>alert(1)</script>",
		`"><img src=x onerror=alert(1)>`,
		`<a href="https://attacker.example/">reset your password</a>`,
		"203.0.113.7\r\nBcc: evil@attacker.example",
		"203.0.113.7<b>",
	}
	allowed := map[string]bool{
		"Date": true, "From": true, "To": true, "Subject": true, "Message-Id": true,
		"Mime-Version": true, "Content-Type": true, "Auto-Submitted": true, "X-Auto-Response-Suppress": true,
	}
	s := smtptest.NewServer(t, smtptest.Options{})
	c := &Config{TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}), From: testFrom}
	provision(t, c)
	for i, e := range evil {
		n := testNotice(authenticators.NoticeFactorAdded, "totp")
		n.Site, n.User, n.ClientIP = e, e, e
		if err := c.Notify(t.Context(), n); err != nil {
			t.Fatalf("Notify(%q) = %v", e, err)
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
		for _, line := range strings.Split(strings.ReplaceAll(p.text, "\r\n", "\n"), "\n") {
			if strings.HasPrefix(line, "Bcc") || strings.HasPrefix(line, "body injection") {
				t.Errorf("%q: text part has an injected line %q", e, line)
			}
		}
		if strings.Contains(p.text, "IP address:") {
			t.Errorf("%q: text part shows a client IP that is not an IP address:\n%s", e, p.text)
		}
		for _, markup := range []string{"<script", "<img", "<a ", "<b>"} {
			if strings.Contains(p.html, markup) {
				t.Errorf("%q: html part contains %q:\n%s", e, markup, p.html)
			}
		}
		if !strings.Contains(p.text, "If this was not you, contact the administrator now.") {
			t.Errorf("%q: text part lacks the advice", e)
		}
	}
}

func TestNotifyRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	c := outboxConfig(dir)
	rec := provision(t, c)
	withTo := func(to string) authenticators.Notice {
		n := testNotice(authenticators.NoticeFactorAdded, "totp")
		n.To = to
		return n
	}
	tests := []struct {
		name   string
		notice authenticators.Notice
	}{
		{"empty address", withTo("")},
		{"not an address", withTo("not an address")},
		{"address with CRLF", withTo(testTo + "\r\nBcc: evil@attacker.example")},
		{"two addresses", withTo(testTo + ", evil@attacker.example")},
		{"display name", withTo("John <" + testTo + ">")},
		{"unknown event", testNotice("password_changed", "totp")},
		{"no event", testNotice("", "totp")},
		{"unknown factor", testNotice(authenticators.NoticeFactorAdded, "webauthn")},
		{"no factor", testNotice(authenticators.NoticeFactorRemoved, "")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Notify(t.Context(), tt.notice)
			if !errors.Is(err, authenticators.ErrDeliveryFailed) {
				t.Fatalf("Notify() = %v, want ErrDeliveryFailed", err)
			}
			if strings.Contains(err.Error(), testTo) {
				t.Errorf("error reveals the address: %v", err)
			}
			r := rec.get()
			if len(r) != i+1 {
				t.Fatalf("%d results, want %d", len(r), i+1)
			}
			last := r[i]
			if last.OK || !last.Permanent || last.ChallengeID != "" || last.User != "john" {
				t.Errorf("result = %+v, want a permanent failure without challenge", last)
			}
			if strings.Contains(fmt.Sprint(last), testTo) || strings.Contains(fmt.Sprint(last), "attacker") {
				t.Errorf("result reveals an address: %+v", last)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("outbox holds %d entries, want none", len(entries))
	}
	n := testNotice(authenticators.NoticeFactorAdded, "totp")
	if err := new(Config).Notify(t.Context(), n); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Errorf("Notify on an unprovisioned config = %v", err)
	}
}

func TestNotifyDeliveryLog(t *testing.T) {
	t.Run("sent", func(t *testing.T) {
		dir := t.TempDir()
		c := outboxConfig(dir)
		rec := provision(t, c)
		before := time.Now()
		if err := c.Notify(t.Context(), testNotice(authenticators.NoticeRecoveryCodeUsed, "recovery")); err != nil {
			t.Fatalf("Notify() = %v", err)
		}
		r := rec.get()
		if len(r) != 1 {
			t.Fatalf("results = %+v, want one", r)
		}
		want := authenticators.DeliveryResult{Method: Method, User: "john", To: "j***@e***.com", Attempt: 1, OK: true}
		got := r[0]
		if got.Time.Before(before) {
			t.Errorf("result time %v before the call", got.Time)
		}
		got.Time, got.Latency = time.Time{}, 0
		if got != want {
			t.Errorf("result = %+v, want %+v", got, want)
		}
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 1 {
			t.Fatalf("outbox holds %d entries (%v), want 1", len(entries), err)
		}
		raw, err := os.ReadFile(filepath.Join(dir, entries[0].Name()))
		if err != nil {
			t.Fatal(err)
		}
		p := parseMail(t, raw)
		if to, err := p.header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != testTo {
			t.Errorf("To = %v, %v", to, err)
		}
	})

	t.Run("refused by the server", func(t *testing.T) {
		s := smtptest.NewServer(t, smtptest.Options{})
		s.Reject(smtptest.StageRcpt, 550, -1)
		c := &Config{TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}), From: testFrom}
		rec := provision(t, c)
		err := c.Notify(t.Context(), testNotice(authenticators.NoticeFactorRemoved, "email"))
		if !errors.Is(err, authenticators.ErrDeliveryFailed) {
			t.Fatalf("Notify() = %v, want ErrDeliveryFailed", err)
		}
		r := rec.get()
		if len(r) != 1 || r[0].OK || !r[0].Permanent || r[0].ChallengeID != "" || r[0].To != "j***@e***.com" || !strings.Contains(r[0].Error, "550") {
			t.Fatalf("results = %+v, want one permanent 550 failure without challenge", r)
		}
		if strings.Contains(r[0].Error, testTo) || strings.Contains(err.Error(), testTo) {
			t.Errorf("the address is revealed: %q, %v", r[0].Error, err)
		}
	})
}

func TestNotifyTranscriptWithoutCode(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{})
	core, logs := observer.New(zapcore.DebugLevel)
	c := &Config{
		TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}),
		From:         testFrom,
		ch:           delivery.Channel[*Message]{Logger: zap.New(core)},
	}
	provision(t, c)
	if err := c.Notify(t.Context(), testNotice(authenticators.NoticeRecoveryCodesRenewed, "recovery")); err != nil {
		t.Fatalf("Notify() = %v", err)
	}
	_ = c.Cleanup()

	// With no code to mask, a server line passes unchanged but for the
	// addresses.
	tr := &transcript{logger: zap.New(core)}
	tr.setCode("")
	tr.Debugf(goMailLog("250 2.0.0 queued as 493817 for <%s>", testTo))

	var lines []string
	for _, e := range logs.All() {
		enc, err := zapcore.NewJSONEncoder(zap.NewDevelopmentEncoderConfig()).EncodeEntry(e.Entry, e.Context)
		if err != nil {
			t.Fatal(err)
		}
		for _, addr := range []string{testTo, "noreply@example.com"} {
			if strings.Contains(enc.String(), addr) {
				t.Errorf("log entry reveals %q: %s", addr, enc.String())
			}
		}
		if e.Message == "smtp transcript" {
			lines = append(lines, e.ContextMap()["line"].(string))
		}
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"EHLO", "MAIL FROM:<n***@e***.com>", "RCPT TO:<j***@e***.com>", "DATA", "QUIT", "250 2.0.0 queued as 493817 for <j***@e***.com>"} {
		if !strings.Contains(all, want) {
			t.Errorf("transcript lacks %q:\n%s", want, all)
		}
	}
	if strings.Contains(all, "******") {
		t.Errorf("transcript masks a code that does not exist:\n%s", all)
	}
	if got := maskText("250 OK", ""); got != "250 OK" {
		t.Errorf(`maskText("250 OK", "") = %q`, got)
	}
}

func TestNoticeIP(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"203.0.113.7", "203.0.113.7"},
		{" 203.0.113.7 ", "203.0.113.7"},
		{"203.0.113.7:443", "203.0.113.7"},
		{"2001:DB8::1", "2001:db8::1"},
		{"[2001:db8::1]:443", "2001:db8::1"},
		{"::ffff:203.0.113.7", "203.0.113.7"},
		{"fe80::1%eth0", "fe80::1"},
		{"fe80::1%<script>", "fe80::1"},
		{"", ""},
		{"unknown", ""},
		{"203.0.113.7, 198.51.100.1", ""},
		{"203.0.113.7\r\nBcc: evil@attacker.example", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := noticeIP(tt.in); got != tt.want {
				t.Errorf("noticeIP(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
