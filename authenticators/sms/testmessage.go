package sms

import (
	"context"

	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// SendTest sends a short test text to the number to through the
// configured provider, so an operator can check the provider without
// signing in. It waits like Deliver: nil means sent (or still being
// retried); an error wrapping authenticators.ErrDeliveryFailed carries
// the provider's answer. The attempt is reported to the delivery log
// under the user "(test)".
func (c *Config) SendTest(ctx context.Context, to, site string) error {
	if err := c.ch.Ready(); err != nil {
		return err
	}
	number, masked, err := c.destination(to)
	if err != nil {
		return c.ch.Fail("", delivery.TestUser, masked, err)
	}
	body := "Test message from " + noticeSite(site) + ": SMS delivery works."
	return c.ch.Send(ctx, delivery.Job[Text]{
		User:    delivery.TestUser,
		To:      masked,
		Payload: Text{To: number, Body: body},
	})
}
