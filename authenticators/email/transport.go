package email

import (
	"context"
	"errors"
	"io"
	"net"
	"net/textproto"

	"github.com/caddyserver/caddy/v2"
	"github.com/wneessen/go-mail"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

func init() {
	caddy.RegisterModule(SMTP{})
	caddy.RegisterModule(Outbox{})
}

// TransportNamespace is the Caddy module namespace of email transports.
const TransportNamespace = "mfa.email_transports"

// Transport sends mail. A transport is a Caddy module in the
// mfa.email_transports namespace ("mfa.email_transports.<name>") that
// implements this interface; it may also implement caddy.Provisioner,
// caddy.Validator and caddy.CleanerUpper, and caddyfile.Unmarshaler for
// the Caddyfile form "transport <name> ...". A third-party plugin adds a
// transport (an HTTP mail API, a queue) by registering such a module;
// nothing in this package has to change.
//
// Send is called from the delivery workers, possibly concurrently, so it
// must be safe for concurrent use. It makes one attempt; the queue
// retries. Its error decides whether the queue retries: an error wrapped
// with Permanent, or a TLS certificate verification failure, is not
// retried; every other error is retried with backoff. The error text goes
// to logs and the delivery log after the code and the addresses in it are
// masked; it must not contain credentials.
type Transport interface {
	Send(ctx context.Context, m *Message) error
}

// DefaultSender is implemented by transports that have a sender of their
// own, used when from is not configured (the outbox does). Without it,
// from is required.
type DefaultSender interface {
	DefaultFrom() string
}

// WorkerTransport is implemented by transports that keep state for each
// delivery worker, such as an open connection (smtp does): each worker
// sends through its own delivery.Worker, made by NewWorker, instead of
// through Send. A worker that also implements delivery.BatchWorker is
// given the messages waiting in the queue together (smtp pipelines them).
// The worker's errors must be masked and classified as Send describes
// (see delivery.Classify). logger is the email authenticator's.
type WorkerTransport interface {
	Transport
	NewWorker(logger *zap.Logger) (delivery.Worker[*Message], error)
}

// Permanent marks err as permanent, so the delivery queue does not retry
// it. It returns nil when err is nil.
func Permanent(err error) error {
	return delivery.Permanent(err)
}

// Message is one email on its way to a transport: rendered, with its
// headers set, to one recipient. A transport sends it as it is: WriteTo
// gives the whole message in RFC 5322 form, as smtp sends it; the fields
// serve transports that build their own request, such as an HTTP mail
// API. A message carries a code or a link: never log it whole.
type Message struct {
	// From is the sender's address, without display name: the envelope
	// sender.
	From string
	// To is the one recipient's address, already validated by
	// ParseAddress.
	To string
	// Subject is the subject line, on one line.
	Subject string
	// Text is the plain-text body.
	Text string
	// HTML is the HTML alternative of the body.
	HTML string
	// Code is the one-time code the message carries, for transports that
	// take it as a field of its own; empty for link messages, notices and
	// test messages. Never log it.
	Code string
	// Link is the one-time link the message carries in link mode; empty
	// otherwise. Never log it: its token signs the user in.
	Link string

	msg  *mail.Msg    // built by go-mail, or
	wire *wireMessage // prepared, with its values
	vals wireValues
}

// WriteTo writes the message in RFC 5322 form, headers and MIME body,
// exactly as the smtp transport sends it.
func (m *Message) WriteTo(w io.Writer) (int64, error) {
	if m.wire == nil {
		return m.msg.WriteTo(w)
	}
	b := getWireBuffer()
	defer putWireBuffer(b)
	*b = m.appendTo(*b)
	n, err := w.Write(*b)
	return int64(n), err
}

// appendTo appends the message in RFC 5322 form to b, when it is
// prepared (m.wire set).
func (m *Message) appendTo(b []byte) []byte {
	return m.wire.appendTo(b, &m.vals)
}

// secret is what must be masked out of transcripts and error texts: the
// code, or the token of the link.
func (m *Message) secret() string {
	return authenticators.Message{Code: m.Code, Link: m.Link}.Secret()
}

// transportWorker sends through a Transport's Send, for transports that
// keep nothing per worker.
type transportWorker struct {
	t Transport
}

// Send makes one attempt and masks and classifies its error.
func (w transportWorker) Send(ctx context.Context, m *Message) error {
	err := w.t.Send(ctx, m)
	if err == nil {
		return nil
	}
	retry := !delivery.IsPermanent(err) && !delivery.IsCertificateError(err)
	return delivery.Classify(err, maskText(err.Error(), m.secret()), retry)
}

func (transportWorker) Close() error { return nil }

// newWorker returns the state of one delivery worker of t.
func newWorker(t Transport, logger *zap.Logger) (delivery.Worker[*Message], error) {
	if wt, ok := t.(WorkerTransport); ok {
		return wt.NewWorker(logger)
	}
	return transportWorker{t: t}, nil
}

// classify masks err's text and marks it permanent unless retrying may
// help (isTransient).
func classify(err error, code string) error {
	return delivery.Classify(err, maskText(err.Error(), code), isTransient(err))
}

// isTransient reports whether a later attempt may succeed: connection
// failures, timeouts and 4xx replies are transient; 5xx replies,
// authentication failures, certificate verification failures and
// configuration mismatches (no STARTTLS, no usable AUTH mechanism) are
// not.
func isTransient(err error) bool {
	if delivery.IsCertificateError(err) {
		return false
	}
	var te *txError
	if errors.As(err, &te) && te.retry {
		return true
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var sendErr *mail.SendError
	if errors.As(err, &sendErr) {
		switch sendErr.Reason {
		case mail.ErrGetSender, mail.ErrGetRcpts, mail.ErrNoUnencoded:
			return false
		case mail.ErrConnCheck:
			return true
		}
		if sendErr.IsTemp() {
			return true
		}
		// A reply code of 0 means no reply: the connection broke.
		return sendErr.ErrorCode() == 0
	}
	var protoErr *textproto.Error
	if errors.As(err, &protoErr) {
		return protoErr.Code >= 400 && protoErr.Code < 500
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// Interface guard
var _ delivery.Worker[*Message] = transportWorker{}
