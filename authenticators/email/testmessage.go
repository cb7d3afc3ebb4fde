package email

import (
	"context"
	"html"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// SendTest sends a test message to the address to through the configured
// transport, like NetIQ's "Send test message" button: an operator checks
// the transport without signing in. It waits like Deliver: nil means sent
// (or still being retried); an error wrapping
// authenticators.ErrDeliveryFailed carries the transport's answer. The
// attempt is reported to the delivery log under the user "(test)".
func (c *Config) SendTest(ctx context.Context, to, site string) error {
	if err := c.ch.Ready(); err != nil {
		return err
	}
	addr, err := ParseAddress(to)
	if err != nil {
		return c.ch.Fail("", delivery.TestUser, Mask(to), err)
	}
	site = siteName(site)
	now := time.Now().UTC().Format(time.RFC1123)
	subject := oneLine("Test message from " + site)
	text := "This is a test message from the sign-in service of " + site + ", sent at " + now +
		" by an administrator.\n\nIf you can read it, email delivery works. There is nothing to do.\n"
	body := "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + html.EscapeString(subject) +
		"</title></head><body><p>" + html.EscapeString(text) + "</p></body></html>\n"
	msg, err := c.newMsg(addr, subject, text, body)
	if err != nil {
		return c.ch.Fail("", delivery.TestUser, Mask(addr), err)
	}
	return c.ch.Send(ctx, delivery.Job[*Message]{
		User:    delivery.TestUser,
		To:      Mask(addr),
		Payload: msg,
	})
}
