package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/textproto"

	"github.com/caddyserver/caddy/v2"
	"github.com/wneessen/go-mail"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// transport is what the email transport modules (smtp, outbox) implement.
// It is unexported so that go-mail's types stay out of the package API.
type transport interface {
	caddy.Module
	// newWorker returns the state of one delivery worker: an SMTP worker
	// keeps its own connection.
	newWorker(logger *zap.Logger) (delivery.Worker[*outgoing], error)
	// defaultFrom is the sender used when from is not configured; empty
	// means from is required.
	defaultFrom() string
}

// outgoing is one rendered message on its way through the queue.
type outgoing struct {
	msg  *mail.Msg
	code string // masked out of transcripts and errors
	to   string // the one recipient, already validated
}

// sendError carries a transport error whose text has the code and the
// addresses masked, so it can go to logs and the delivery log.
type sendError struct {
	msg string
	err error
}

func (e *sendError) Error() string { return e.msg }
func (e *sendError) Unwrap() error { return e.err }

// classify masks err's text and marks it permanent unless retrying may
// help.
func classify(err error, code string) error {
	e := &sendError{msg: maskText(err.Error(), code), err: err}
	if isTransient(err) {
		return e
	}
	return delivery.Permanent(e)
}

// isTransient reports whether a later attempt may succeed: connection
// failures, timeouts and 4xx replies are transient; 5xx replies,
// authentication failures, certificate verification failures and
// configuration mismatches (no STARTTLS, no usable AUTH mechanism) are
// not.
func isTransient(err error) bool {
	var (
		verifyErr    *tls.CertificateVerificationError
		authorityErr x509.UnknownAuthorityError
		hostnameErr  x509.HostnameError
		invalidErr   x509.CertificateInvalidError
	)
	if errors.As(err, &verifyErr) || errors.As(err, &authorityErr) ||
		errors.As(err, &hostnameErr) || errors.As(err, &invalidErr) {
		return false
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
