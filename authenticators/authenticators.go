package authenticators

import (
	"context"
	"errors"
	"time"
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
	// To is the user's destination on file (an email address, a phone
	// number).
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

// Key names what n's event did to its factor, as the message catalog's
// security.subject.* and security.what.* messages do: the event, and for
// a factor added or removed, the factor ("factor_added.totp").
func (n Notice) Key() string {
	switch n.Event {
	case NoticeFactorAdded, NoticeFactorRemoved:
		return n.Event + "." + n.Factor
	}
	return n.Event
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
	// NoticeSessionsEnded: sessions were ended, or remembered devices
	// forgotten, from the account page.
	NoticeSessionsEnded = "sessions_ended"
)

// Notifier sends security notices; the email and SMS authenticators
// implement it.
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
