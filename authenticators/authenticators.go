package authenticators

import (
	"context"
	"errors"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// ErrDeliveryFailed wraps a permanent delivery failure: the message will not
// arrive, and the user should be told so.
var ErrDeliveryFailed = errors.New("delivery failed")

// Message is one code or link to deliver to one destination.
type Message struct {
	// ChallengeID identifies the challenge, for the delivery log.
	ChallengeID string
	// User is the canonical user name.
	User string
	// To is the destination on file (an email address, a phone number).
	To string
	// Code is the one-time code; empty in link mode.
	Code string
	// Link is the one-time link; empty in code mode.
	Link string
	// TTL is how long the code or link stays valid.
	TTL time.Duration
	// Site names the protected site in the message (the host of base_url,
	// or the request host when no base_url is configured).
	Site string
}

// Sender delivers messages for one method. Deliver hands the message to an
// asynchronous queue and waits a short while for the first attempt: nil
// means sent or still being retried; an error wrapping ErrDeliveryFailed
// means it will not arrive.
type Sender interface {
	// Method is the method name ("email", "sms").
	Method() string
	// Mask hides most of a destination for pages and logs.
	Mask(to string) string
	// Deliver queues m and waits briefly for the first attempt.
	Deliver(ctx context.Context, m Message) error
}

// Notice is a security notice to a user about a change to their own
// account's second factors. It never carries a code, a link or a secret.
type Notice struct {
	// User is the canonical user name.
	User string
	// To is the user's destination on file (an email address).
	To string
	// Site names the protected site, as in Message.Site; empty means
	// "this site".
	Site string
	// Event is what happened: one of the Notice* constants.
	Event string
	// Factor is the factor the event is about: "totp", "email", "sms" or
	// "recovery". The recovery code events imply it.
	Factor string
	// Time is when it happened; zero means the time of sending.
	Time time.Time
	// ClientIP is the client IP of the request that caused the event;
	// empty when unknown.
	ClientIP string
}

// Events of a Notice.
const (
	// NoticeFactorAdded: a factor was added, or an address or phone number
	// on file was changed.
	NoticeFactorAdded = "factor_added"
	// NoticeFactorRemoved: a factor was removed.
	NoticeFactorRemoved = "factor_removed"
	// NoticeRecoveryCodeUsed: a recovery code was used to sign in.
	NoticeRecoveryCodeUsed = "recovery_code_used"
	// NoticeRecoveryCodesRenewed: new recovery codes replaced the old ones.
	NoticeRecoveryCodesRenewed = "recovery_codes_renewed"
)

// Notifier sends security notices; the email authenticator implements it.
// Notify returns nil when the notice was sent or is still being tried, and
// an error wrapping ErrDeliveryFailed when it will not arrive (an unknown
// event, an invalid address, a permanent failure).
type Notifier interface {
	// Notify renders n and queues it, waiting briefly for the first
	// attempt, as Sender.Deliver does.
	Notify(ctx context.Context, n Notice) error
}

// DeliveryResult is one delivery attempt, reported to the delivery log.
type DeliveryResult struct {
	Time        time.Time     `json:"time"`
	ChallengeID string        `json:"challenge_id,omitempty"`
	Method      string        `json:"method"`
	User        string        `json:"user,omitempty"`
	To          string        `json:"to"` // masked
	Attempt     int           `json:"attempt"`
	OK          bool          `json:"ok"`
	Permanent   bool          `json:"permanent,omitempty"`
	Error       string        `json:"error,omitempty"`
	Latency     time.Duration `json:"latency"`
}

// Limits are the per-method rules of the Curity seeds: code shape and life,
// attempts per challenge, sends per challenge and throttle windows.
type Limits struct {
	// CodeLength is the number of digits of a code, 4 to 10. Default: 6.
	CodeLength int `json:"code_length,omitempty"`
	// CodeTTL is how long a code stays valid. Default and maximum: 10m for
	// email.
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
	// PerHour caps all sends of this method per hour. Default: 100.
	PerHour int `json:"per_hour,omitempty"`
	// Per5m caps all sends of this method per 5 minutes. Default: 20.
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
