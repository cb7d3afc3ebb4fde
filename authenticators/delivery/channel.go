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
// the delivery log, and the log of every attempt. A Channel that was not
// started sends nothing.
type Channel[T any] struct {
	// Logger receives the log of every attempt, and is the channel's
	// logger for what it sends through. Start uses a no-op logger when it
	// is nil.
	Logger *zap.Logger
	// Backoff is the wait before the first retry; zero takes
	// DefaultBackoff. Tests shorten it.
	Backoff time.Duration

	method string
	queue  *Queue[T]
	report func(authenticators.DeliveryResult)
}

// Start starts the delivery queue of opts.Method, tuned by cfg (nil or
// zero fields take the defaults): opts.Workers, Retries and Wait are taken
// from cfg, and opts.Backoff from c. Every attempt is logged to c.Logger,
// once, and then handed to opts.Report when it is not nil (the handler's
// delivery log). A Channel is started once.
func (c *Channel[T]) Start(cfg *Config, opts Options[T]) error {
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	cfg = cfg.WithDefaults()
	c.method, c.report = opts.Method, opts.Report
	opts.Workers = cfg.Workers
	opts.Retries = cfg.Retries
	opts.Wait = time.Duration(cfg.Wait)
	opts.Backoff = c.Backoff
	opts.Report = c.result
	q, err := New(opts)
	if err != nil {
		return err
	}
	c.queue = q
	return nil
}

// Ready returns an error wrapping authenticators.ErrDeliveryFailed and
// ErrNotProvisioned when c was not started.
func (c *Channel[T]) Ready() error {
	if c.queue == nil {
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
	if c.queue != nil {
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
// idempotent, and does nothing on a channel that was not started.
func (c *Channel[T]) Stop() {
	if c.queue != nil {
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
// retried as a warning, a final failure as an error. Nothing is built for
// a level the logger leaves out, which for successes is the usual case.
func (c *Channel[T]) log(r authenticators.DeliveryResult) {
	level, what := zap.DebugLevel, " sent"
	switch {
	case r.Permanent:
		level, what = zap.ErrorLevel, " delivery failed"
	case !r.OK:
		level, what = zap.WarnLevel, " delivery attempt failed, retrying"
	}
	if !c.Logger.Core().Enabled(level) {
		return
	}
	ce := c.Logger.Check(level, c.method+what)
	if ce == nil {
		return
	}
	fields := []zap.Field{
		zap.String("challenge_id", r.ChallengeID),
		zap.String("to", r.To),
		zap.Int("attempt", r.Attempt),
		zap.Duration("latency", r.Latency),
	}
	if !r.OK {
		fields = append(fields, zap.String("error", r.Error))
	}
	ce.Write(fields...)
}
