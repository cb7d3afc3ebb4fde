package caddyfile

import (
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
)

// TestAdaptedLinkProvisions loads the handler adapted from
// link.caddyfiletest as Caddy does: email and sms in link mode, with their
// link_ttl and link_message, provision and validate.
func TestAdaptedLinkProvisions(t *testing.T) {
	handlers := goldenHandlers(t, "link.caddyfiletest")
	if len(handlers) != 1 {
		t.Fatalf("got %d mfa handlers; want 1", len(handlers))
	}
	h, raw, err := loadAdapted(t, handlers[0])
	if err != nil {
		t.Fatalf("loading %s: %v", raw, err)
	}
	if h.Email.Send != email.SendLink || time.Duration(h.Email.LinkTTL) != 15*time.Minute {
		t.Errorf("email send %q, link_ttl %v", h.Email.Send, time.Duration(h.Email.LinkTTL))
	}
	if h.SMS.Send != sms.SendLink || time.Duration(h.SMS.LinkTTL) != 3*time.Minute || h.SMS.LinkMessages["sv"] == "" {
		t.Errorf("sms send %q, link_ttl %v, link_messages %v", h.SMS.Send, time.Duration(h.SMS.LinkTTL), h.SMS.LinkMessages)
	}
}

// TestLinkCheckedAtProvision shows what link mode leaves to provision:
// base_url, which the links are built from, and the lifetime limit.
func TestLinkCheckedAtProvision(t *testing.T) {
	tests := []struct {
		name string
		body string // lines of the mfa block
		want string // a fragment of the error; "" if the handler provisions
	}{
		{"email with base_url", "base_url https://app.example.com\nemail {\noutbox ./mailbox\nsend link\n}", ""},
		{"email without base_url", "email {\noutbox ./mailbox\nsend link\n}", "email: send link needs base_url"},
		{"sms without base_url", "sms {\nprovider outbox ./sms-outbox\nsend link\n}", "sms: send link needs base_url"},
		{"email link_ttl above 1h", "base_url https://app.example.com\nemail {\noutbox ./mailbox\nsend link\nlink_ttl 61m\n}", "link_ttl 1h1m0s outside"},
		{"sms link_ttl above 1h", "base_url https://app.example.com\nsms {\nprovider outbox ./sms-outbox\nsend link\nlink_ttl 2h\n}", "link_ttl 2h0m0s outside"},
		{"email send other", "email {\noutbox ./mailbox\nsend voice\n}", `send must be code or link, not "voice"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := "app.example.com {\n\tmfa {\n\t\tusers {\n\t\t\talice email alice@example.com phone +12015550123\n\t\t}\n" +
				tt.body + "\n\t}\n}\n"
			handlers := adaptedHandlers(t, input)
			if len(handlers) != 1 {
				t.Fatalf("got %d mfa handlers; want 1", len(handlers))
			}
			_, raw, err := loadAdapted(t, handlers[0])
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("loading %s: %v", raw, err)
			case tt.want != "" && err == nil:
				t.Fatalf("loading succeeded; want an error containing %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}
