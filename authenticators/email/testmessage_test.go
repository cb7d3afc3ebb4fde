package email

import (
	"errors"
	"strings"
	"testing"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

func TestSendTest(t *testing.T) {
	t.Run("delivered", func(t *testing.T) {
		s := smtptest.NewServer(t, smtptest.Options{})
		c := &Config{TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}), From: testFrom}
		rec := provision(t, c)
		if err := c.SendTest(t.Context(), testTo, "app.example.com\r\nBcc: x@evil.test"); err != nil {
			t.Fatalf("SendTest() = %v", err)
		}
		msgs := s.Messages()
		if len(msgs) != 1 || len(msgs[0].To) != 1 || msgs[0].To[0] != testTo {
			t.Fatalf("messages = %+v, want one to %s", msgs, testTo)
		}
		p := parseMail(t, msgs[0].Data)
		if !strings.HasPrefix(p.header.Get("Subject"), "Test message from app.example.com") || !strings.Contains(p.text, "email delivery works") {
			t.Errorf("subject %q, text %q", p.header.Get("Subject"), p.text)
		}
		if r := rec.get(); len(r) != 1 || !r[0].OK || r[0].User != "(test)" || r[0].To != "j***@e***.com" {
			t.Errorf("results = %+v", r)
		}
	})
	t.Run("refused", func(t *testing.T) {
		s := smtptest.NewServer(t, smtptest.Options{})
		s.Reject(smtptest.StageRcpt, 550, -1)
		c := &Config{TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"ca_file": s.CAFile}), From: testFrom}
		rec := provision(t, c)
		err := c.SendTest(t.Context(), testTo, "app.example.com")
		if !errors.Is(err, authenticators.ErrDeliveryFailed) || !strings.Contains(err.Error(), "550") {
			t.Fatalf("SendTest() = %v, want the server's 550", err)
		}
		if r := rec.get(); len(r) != 1 || r[0].OK || !r[0].Permanent {
			t.Errorf("results = %+v", r)
		}
	})
	t.Run("bad address", func(t *testing.T) {
		c := outboxConfig(t.TempDir())
		provision(t, c)
		if err := c.SendTest(t.Context(), "not an address", ""); !errors.Is(err, authenticators.ErrDeliveryFailed) {
			t.Fatalf("SendTest() = %v", err)
		}
	})
}
