package authenticators

import (
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// What a message carries: the send setting of every channel.
const (
	// SendCode sends a one-time code to type in.
	SendCode = "code"
	// SendLink sends a single-use link to open and confirm.
	SendLink = "link"
)

// Defaults and bounds every channel shares; the Curity Email and SMS OTP
// seeds agree on them.
const (
	DefaultCodeLength            = 6
	DefaultMaxAttempts           = 3
	DefaultMaxSends              = 3
	MaxCodeTTL                   = 10 * time.Minute
	MaxLinkTTL                   = time.Hour
	MaxAttempts                  = 100
	MaxSends                     = 100
	DefaultPerIPPerHour          = 10
	DefaultPerUserPerHour        = 5
	DefaultPerDestinationPerHour = 5
	DefaultCooldown              = 30 * time.Second
)

// Defaults are the defaults in which the channels differ: a text is read
// at once and costs money, an email may wait in an inbox.
type Defaults struct {
	// CodeTTL is the default code lifetime.
	CodeTTL time.Duration
	// LinkTTL is the default link lifetime in link mode.
	LinkTTL time.Duration
	// PerHour and Per5m are the default global caps of the throttle.
	PerHour int
	Per5m   int
}

// Apply sets the zero settings of a channel to their defaults: what it
// sends, the link lifetime and the limits, the throttle caps included.
func (d Defaults) Apply(send *string, linkTTL *caddy.Duration, l *Limits) {
	setZero(send, SendCode)
	setZero(linkTTL, caddy.Duration(d.LinkTTL))
	setZero(&l.CodeLength, DefaultCodeLength)
	setZero(&l.CodeTTL, caddy.Duration(d.CodeTTL))
	setZero(&l.MaxAttempts, DefaultMaxAttempts)
	setZero(&l.MaxSends, DefaultMaxSends)
	if l.Throttle == nil {
		l.Throttle = new(Throttle)
	}
	t := l.Throttle
	setZero(&t.PerHour, d.PerHour)
	setZero(&t.Per5m, d.Per5m)
	setZero(&t.PerIPPerHour, DefaultPerIPPerHour)
	setZero(&t.PerUserPerHour, DefaultPerUserPerHour)
	setZero(&t.PerDestinationPerHour, DefaultPerDestinationPerHour)
	setZero(&t.Cooldown, caddy.Duration(DefaultCooldown))
}

// setZero sets *p to v when *p is the zero value.
func setZero[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// CheckSettings checks the settings every channel shares without changing
// them; zero values stand for their defaults, so it may run before or
// after Apply.
func CheckSettings(send string, linkTTL caddy.Duration, l *Limits) error {
	switch send {
	case "", SendCode, SendLink:
	default:
		return fmt.Errorf("send must be %s or %s, not %q", SendCode, SendLink, send)
	}
	if l.CodeLength != 0 && (l.CodeLength < MinCodeLength || l.CodeLength > MaxCodeLength) {
		return fmt.Errorf("code_length %d outside %d..%d", l.CodeLength, MinCodeLength, MaxCodeLength)
	}
	if l.CodeTTL < 0 || time.Duration(l.CodeTTL) > MaxCodeTTL {
		return fmt.Errorf("code_ttl %s outside 0..%s", time.Duration(l.CodeTTL), MaxCodeTTL)
	}
	if linkTTL < 0 || time.Duration(linkTTL) > MaxLinkTTL {
		return fmt.Errorf("link_ttl %s outside 0..%s", time.Duration(linkTTL), MaxLinkTTL)
	}
	if l.MaxAttempts != 0 && (l.MaxAttempts < 1 || l.MaxAttempts > MaxAttempts) {
		return fmt.Errorf("max_attempts %d outside 1..%d", l.MaxAttempts, MaxAttempts)
	}
	if l.MaxSends != 0 && (l.MaxSends < 1 || l.MaxSends > MaxSends) {
		return fmt.Errorf("max_sends %d outside 1..%d", l.MaxSends, MaxSends)
	}
	return nil
}

// Limits are the per-method rules of the Curity seeds: code shape and life,
// attempts per challenge, sends per challenge and throttle windows.
type Limits struct {
	// CodeLength is the number of digits of a code, 4 to 10. Default: 6.
	CodeLength int `json:"code_length,omitempty"`
	// CodeTTL is how long a code stays valid, at most 10m. Default: 10m
	// for email, 1m for SMS.
	CodeTTL caddy.Duration `json:"code_ttl,omitempty"`
	// MaxAttempts is how many codes may be tried against one challenge
	// before it dies, 1 to 100. Default: 3.
	MaxAttempts int `json:"max_attempts,omitempty"`
	// MaxSends is how many times one challenge may be sent (the first send
	// plus resends). Default: 3.
	MaxSends int `json:"max_sends,omitempty"`
	// Throttle caps how many messages are sent per window.
	Throttle *Throttle `json:"throttle,omitempty"`
}

// Throttle caps sends per window. Zero fields take their default; a
// negative value turns that cap off.
type Throttle struct {
	// PerHour caps all sends of this method per hour. Default: 100 for
	// email, 50 for SMS.
	PerHour int `json:"per_hour,omitempty"`
	// Per5m caps all sends of this method per 5 minutes. Default: 20 for
	// email, 10 for SMS.
	Per5m int `json:"per_5m,omitempty"`
	// PerIPPerHour caps sends requested from one client IP per hour.
	// Default: 10.
	PerIPPerHour int `json:"per_ip_per_hour,omitempty"`
	// PerUserPerHour caps sends to one user per hour. Default: 5.
	PerUserPerHour int `json:"per_user_per_hour,omitempty"`
	// PerDestinationPerHour caps sends to one destination per hour.
	// Default: 5.
	PerDestinationPerHour int `json:"per_destination_per_hour,omitempty"`
	// Cooldown is the least time between two sends to one destination.
	// Default: 30s.
	Cooldown caddy.Duration `json:"cooldown,omitempty"`
}
