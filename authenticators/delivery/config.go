package delivery

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// Bounds of Config.
const (
	MaxWorkers = 100
	MaxRetries = 20
	MaxWait    = time.Minute
)

// Config tunes the delivery queue of one channel: the delivery block of
// the email and sms methods.
type Config struct {
	// Workers is the number of concurrent senders; an smtp sender keeps
	// its connection open between messages, and sends the messages
	// waiting in the queue when it is free as one pipelined batch (up to
	// 16). Default: 2; at most 100.
	Workers int `json:"workers,omitempty"`
	// Retries is how many times a transient failure (a connection failure,
	// a timeout, an SMTP 4xx reply, an HTTP 5xx, 408 or 429 answer) is
	// retried, with exponential backoff (200ms, 400ms, 800ms...). Default:
	// 3; a negative value turns retries off. At most 20.
	Retries int `json:"retries,omitempty"`
	// Wait is how long a request waits for the outcome (the first attempt
	// and the retries that fit) before it answers "sent". Default: 5s; at
	// most 1m.
	Wait caddy.Duration `json:"wait,omitempty"`
}

// WithDefaults returns c, or a new Config when c is nil, with its zero
// fields set to their defaults.
func (c *Config) WithDefaults() *Config {
	if c == nil {
		c = new(Config)
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Retries == 0 {
		c.Retries = DefaultRetries
	}
	if c.Wait == 0 {
		c.Wait = caddy.Duration(DefaultWait)
	}
	return c
}

// Validate checks c without changing it; a nil c or zero fields stand for
// the defaults.
func (c *Config) Validate() error {
	if c == nil {
		return nil
	}
	if c.Workers < 0 || c.Workers > MaxWorkers {
		return fmt.Errorf("delivery workers %d outside 1..%d", c.Workers, MaxWorkers)
	}
	if c.Retries > MaxRetries {
		return fmt.Errorf("delivery retries %d above %d", c.Retries, MaxRetries)
	}
	if c.Wait < 0 || time.Duration(c.Wait) > MaxWait {
		return fmt.Errorf("delivery wait %s outside 0..1m", time.Duration(c.Wait))
	}
	return nil
}

// UnmarshalCaddyfile reads a delivery block, the same for every channel.
// The dispenser is on the "delivery" token. Syntax:
//
//	delivery {
//	    workers <n>
//	    retries <n>|off
//	    wait    <duration>
//	}
//
// Each subdirective may appear once; counts and the wait must be
// positive, because zero means "the default" in JSON. "retries off" sends
// once and never retries, as off turns a throttle cap off.
func (c *Config) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Check(d, "delivery"); err != nil {
			return err
		}
		switch d.Val() {
		case "workers":
			n, err := cfargs.IntArg(d, false)
			if err != nil {
				return err
			}
			c.Workers = n
		case "retries":
			n, err := cfargs.IntArg(d, true)
			if err != nil {
				return err
			}
			c.Retries = n
		case "wait":
			v, err := cfargs.DurationArg(d, false)
			if err != nil {
				return err
			}
			c.Wait = v
		default:
			return cfargs.Unrecognized(d, "delivery", "workers", "retries", "wait")
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Config)(nil)
