package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
)

// ErrNotProvisioned means a channel was asked to send before it was
// provisioned.
var ErrNotProvisioned = errors.New("sender is not provisioned")

// TestUser is the user name under which test messages (an operator
// checking a transport or provider) are reported.
const TestUser = "(test)"

// Channel is the plumbing one message method (email, sms) shares with the
// others once it runs: its delivery queue, the report of every attempt to
// the delivery log, and the log of every attempt. A nil *Channel is a
// channel that was not provisioned: it sends nothing.
type Channel[T any] struct {
	method string
	logger *zap.Logger
	queue  *Queue[T]
	report func(authenticators.DeliveryResult)
}

// Start starts the delivery queue of opts.Method, tuned by cfg (nil or
// zero fields take the defaults); opts.Workers, Retries and Wait are taken
// from cfg. Every attempt is logged to logger, once, and then handed to
// opts.Report when it is not nil (the handler's delivery log).
func Start[T any](logger *zap.Logger, cfg *Config, opts Options[T]) (*Channel[T], error) {
	cfg = cfg.WithDefaults()
	if logger == nil {
		logger = zap.NewNop()
	}
	c := &Channel[T]{method: opts.Method, logger: logger, report: opts.Report}
	opts.Workers = cfg.Workers
	opts.Retries = cfg.Retries
	opts.Wait = time.Duration(cfg.Wait)
	opts.Report = c.result
	q, err := New(opts)
	if err != nil {
		return nil, err
	}
	c.queue = q
	return c, nil
}

// Ready returns an error wrapping authenticators.ErrDeliveryFailed and
// ErrNotProvisioned when c is not provisioned.
func (c *Channel[T]) Ready() error {
	if c == nil {
		return fmt.Errorf("%w: %w", authenticators.ErrDeliveryFailed, ErrNotProvisioned)
	}
	return nil
}

// Send queues j and waits as Queue.Deliver does: nil means sent or still
// being tried; an error wrapping authenticators.ErrDeliveryFailed means
// the message will not arrive. j.To must be masked.
func (c *Channel[T]) Send(ctx context.Context, j Job[T]) error {
	if err := c.Ready(); err != nil {
		return err
	}
	return c.queue.Deliver(ctx, j)
}

// Fail reports a failure found before a message reached the queue (an
// invalid destination, a message that cannot be rendered) as a permanent
// one, and returns err wrapped in authenticators.ErrDeliveryFailed. masked
// is the masked destination; err's text must not hold a code, a link or a
// full destination.
func (c *Channel[T]) Fail(challengeID, user, masked string, err error) error {
	if c != nil {
		c.result(authenticators.DeliveryResult{
			Time:        time.Now(),
			ChallengeID: challengeID,
			Method:      c.method,
			User:        user,
			To:          masked,
			Permanent:   true,
			Error:       err.Error(),
		})
	}
	return fmt.Errorf("%w: %w", authenticators.ErrDeliveryFailed, err)
}

// Stop stops the queue and waits for its workers; see Queue.Stop. It is
// idempotent, and does nothing on a nil c.
func (c *Channel[T]) Stop() {
	if c != nil {
		c.queue.Stop()
	}
}

// result logs one attempt and reports it. Results carry masked
// destinations and masked error texts already.
func (c *Channel[T]) result(r authenticators.DeliveryResult) {
	c.log(r)
	if c.report != nil {
		c.report(r)
	}
}

// log logs one attempt: a success at debug level, a failure that will be
// retried as a warning, a final failure as an error.
func (c *Channel[T]) log(r authenticators.DeliveryResult) {
	fields := []zap.Field{
		zap.String("challenge_id", r.ChallengeID),
		zap.String("to", r.To),
		zap.Int("attempt", r.Attempt),
		zap.Duration("latency", r.Latency),
	}
	switch {
	case r.OK:
		if ce := c.logger.Check(zap.DebugLevel, c.method+" sent"); ce != nil {
			ce.Write(fields...)
		}
	case r.Permanent:
		c.logger.Error(c.method+" delivery failed", append(fields, zap.String("error", r.Error))...)
	default:
		c.logger.Warn(c.method+" delivery attempt failed, retrying", append(fields, zap.String("error", r.Error))...)
	}
}
