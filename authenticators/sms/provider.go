package sms

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// ProviderNamespace is the Caddy module namespace of SMS providers.
const ProviderNamespace = "mfa.sms_providers"

// Provider sends text messages. A provider is a Caddy module in the
// mfa.sms_providers namespace ("mfa.sms_providers.<name>") that implements
// this interface; it may also implement caddy.Provisioner, caddy.Validator
// and caddy.CleanerUpper, and caddyfile.Unmarshaler for the Caddyfile form
// "provider <name> ...". A third-party plugin adds a provider by
// registering such a module; nothing in this package has to change.
//
// Send is called from the delivery workers, possibly concurrently, so it
// must be safe for concurrent use. It makes one attempt; the queue retries.
// Its error decides whether the queue retries:
//
//   - an error wrapped with Permanent, or a *StatusError whose Temporary
//     method reports false (3xx, and 4xx other than 408 and 429), is not retried:
//     the number, the credentials or the request are wrong, and trying
//     again would fail the same way;
//   - TLS certificate verification failures are not retried either;
//   - every other error (5xx, 408, 429, timeouts, connection failures) is
//     retried with backoff.
//
// The error text goes to logs and the delivery log after the code and the
// numbers in it are masked; it must not contain credentials.
type Provider interface {
	Send(ctx context.Context, t Text) error
}

// Text is one text message on its way to a provider.
type Text struct {
	// To is the destination in E.164 form, e.g. "+12015550123", already
	// validated by ParseNumber.
	To string
	// Body is the text to send, with the code in it.
	Body string
	// Code is the one-time code Body carries, for gateways that take it as
	// a field of its own; empty for notices and link messages. Never log
	// it.
	Code string
	// Link is the one-time link Body carries in link mode; empty
	// otherwise. Never log it: its token signs the user in.
	Link string
}

// StatusError is a provider's HTTP answer that is not a success.
type StatusError struct {
	// Provider names the provider, e.g. "twilio".
	Provider string
	// StatusCode is the HTTP status code.
	StatusCode int
	// Code is the provider's own error code, e.g. Twilio's "21211"; empty
	// when the answer has none.
	Code string
	// Message is the provider's explanation, on one line; empty when the
	// answer has none.
	Message string
}

// Error returns e.g. `twilio: HTTP 400, error 21211: Invalid 'To' Phone
// Number`.
func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d", e.Provider, e.StatusCode)
	if t := http.StatusText(e.StatusCode); t != "" {
		s += " " + t
	}
	if e.Code != "" {
		s += ", error " + e.Code
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Temporary reports whether a later attempt may succeed: on 408 Request
// Timeout, 429 Too Many Requests and 5xx server errors. Other answers
// (redirects, 4xx) are permanent.
func (e *StatusError) Temporary() bool {
	return e.StatusCode == http.StatusRequestTimeout ||
		e.StatusCode == http.StatusTooManyRequests ||
		e.StatusCode >= 500
}

// Permanent marks err as permanent, so the delivery queue does not retry
// it. It returns nil when err is nil.
func Permanent(err error) error {
	return delivery.Permanent(err)
}

// IsPermanent reports whether the delivery queue would give up on err at
// once: it was marked with Permanent, or it is a *StatusError that is not
// Temporary, or a TLS certificate verification failure.
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	if delivery.IsPermanent(err) {
		return true
	}
	var se *StatusError
	if errors.As(err, &se) {
		return !se.Temporary()
	}
	return delivery.IsCertificateError(err)
}

// classify masks the code, the link's token and the numbers in err's text
// and marks it permanent when IsPermanent says so; every other error is
// left for the queue to retry.
func classify(err error, t Text) error {
	secret := authenticators.Message{Code: t.Code, Link: t.Link}.Secret()
	return delivery.Classify(err, maskText(err.Error(), secret, t.To), !IsPermanent(err))
}

// providerWorker is the state of one delivery worker: providers keep their
// own connection pools, so there is nothing per worker.
type providerWorker struct {
	p Provider
}

// Send makes one attempt through the provider.
func (w providerWorker) Send(ctx context.Context, t Text) error {
	if err := w.p.Send(ctx, t); err != nil {
		return classify(err, t)
	}
	return nil
}

func (providerWorker) Close() error { return nil }

// Interface guard
var _ delivery.Worker[Text] = providerWorker{}
