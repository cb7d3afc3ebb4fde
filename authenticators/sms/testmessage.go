package sms

import (
	"context"
	"fmt"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// SendTest sends a short test text to the number to through the
// configured provider, so an operator can check the provider without
// signing in. It waits like Deliver: nil means sent (or still being
// retried); an error wrapping authenticators.ErrDeliveryFailed carries
// the provider's answer. The attempt is reported to the delivery log
// under the user "(test)".
func (c *Config) SendTest(ctx context.Context, to, site string) error {
	if c.queue == nil {
		return fmt.Errorf("%w: sms sender is not provisioned", authenticators.ErrDeliveryFailed)
	}
	const user = "(test)"
	number, masked, err := c.destination(to)
	if err != nil {
		c.reportNow("", user, masked, err)
		return fmt.Errorf("%w: %w", authenticators.ErrDeliveryFailed, err)
	}
	body := "Test message from " + noticeSite(site) + ": SMS delivery works."
	return c.queue.Deliver(ctx, delivery.Job[Text]{
		User:    user,
		To:      masked,
		Payload: Text{To: number, Body: body},
	})
}
