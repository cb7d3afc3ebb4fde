package delivery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// Permanent marks err as permanent: the queue does not retry it. It returns
// nil when err is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err, or an error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

type permanentError struct {
	err error
}

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// IsCertificateError reports whether err is, or wraps, a failure to verify
// a TLS certificate: an unknown authority, a wrong host name, an expired
// or otherwise invalid certificate. Retrying does not help.
func IsCertificateError(err error) bool {
	var (
		verifyErr    *tls.CertificateVerificationError
		authorityErr x509.UnknownAuthorityError
		hostnameErr  x509.HostnameError
		invalidErr   x509.CertificateInvalidError
	)
	return errors.As(err, &verifyErr) || errors.As(err, &authorityErr) ||
		errors.As(err, &hostnameErr) || errors.As(err, &invalidErr)
}

// Mask returns err with text as its message: err's text with codes,
// links and destinations masked, so it can go to logs and the delivery
// log, while errors.Is and errors.As still see err.
func Mask(err error, text string) error {
	return &maskedError{text: text, err: err}
}

// Classify prepares a failed attempt's error for the queue: err with its
// masked text (see Mask), marked Permanent unless retry.
func Classify(err error, text string, retry bool) error {
	if retry {
		return Mask(err, text)
	}
	return Permanent(Mask(err, text))
}

// maskedError is an error whose text has the secrets in it masked.
type maskedError struct {
	text string
	err  error
}

func (e *maskedError) Error() string { return e.text }
func (e *maskedError) Unwrap() error { return e.err }
