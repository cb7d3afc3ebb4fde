package sms

import (
	"errors"
	"strings"
	"testing"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
)

func TestSendTest(t *testing.T) {
	s := twiliotest.NewServer(t)
	c := &Config{ProviderRaw: twilioJSON(s, nil)}
	rec := provision(t, c, nil)
	if err := c.SendTest(t.Context(), "+12015550123", "app.example.com\r\nX"); err != nil {
		t.Fatalf("SendTest() = %v", err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].To != "+12015550123" || !strings.HasPrefix(msgs[0].Body, "Test message from app.example.com  X: SMS delivery works.") {
		t.Fatalf("messages = %+v", msgs)
	}
	if r := rec.get(); len(r) != 1 || !r[0].OK || r[0].User != "(test)" || r[0].To != "+1*******23" {
		t.Errorf("results = %+v", r)
	}

	s.Fail(400, 21211, "The 'To' number is not a valid phone number.", -1)
	err := c.SendTest(t.Context(), "+12015550123", "")
	if !errors.Is(err, authenticators.ErrDeliveryFailed) || !strings.Contains(err.Error(), "21211") {
		t.Fatalf("SendTest() with a refusing provider = %v, want its 21211", err)
	}
	if err := c.SendTest(t.Context(), "not a number", ""); !errors.Is(err, authenticators.ErrDeliveryFailed) {
		t.Fatalf("SendTest() to a bad number = %v", err)
	}
}
