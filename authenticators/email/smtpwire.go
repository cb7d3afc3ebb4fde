package email

import (
	"errors"
	"fmt"
	"net/textproto"
)

// SMTP commands of a mail transaction, as txError names them.
const (
	stepMail = "MAIL FROM"
	stepRcpt = "RCPT TO"
	stepData = "DATA"
	stepBody = "message data"
)

// txError is a failed step of a mail transaction of a prepared message.
// Its text is the step and the server's reply (or what broke the
// connection); classify and isTransient see the reply through Unwrap.
type txError struct {
	step string
	err  error
	// gone: the connection was lost before the server could have taken
	// any of the message, so it may be sent again on a new connection
	// (connectionGone).
	gone bool
}

func (e *txError) Error() string { return fmt.Sprintf("smtp %s failed: %v", e.step, e.err) }
func (e *txError) Unwrap() error { return e.err }

// replied reports whether err is the server's reply rather than a broken
// connection.
func replied(err error) bool {
	var pe *textproto.Error
	return errors.As(err, &pe)
}

// sendWire sends a prepared message on the open session, one command
// after the other, as go-mail does.
func (w *smtpWorker) sendWire(m *Message) error {
	sc := w.sc
	if err := sc.UpdateDeadline(w.s.timeout); err != nil {
		return &txError{step: stepMail, err: err}
	}
	if err := sc.Mail("<" + m.From + ">"); err != nil {
		return &txError{step: stepMail, err: err, gone: !replied(err)}
	}
	if err := sc.Rcpt("<" + m.To + ">"); err != nil {
		return &txError{step: stepRcpt, err: err}
	}
	wc, err := sc.Data()
	if err != nil {
		return &txError{step: stepData, err: err}
	}
	b := getWireBuffer()
	*b = m.appendTo(*b)
	_, err = wc.Write(*b)
	putWireBuffer(b)
	if cerr := wc.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return &txError{step: stepBody, err: err}
	}
	return nil
}
