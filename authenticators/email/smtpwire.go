package email

import (
	"errors"
	"fmt"
	"net/textproto"
	"strconv"

	"github.com/wneessen/go-mail/log"
)

// SMTP commands of a mail transaction, as txError names them.
const (
	stepMail = "MAIL FROM"
	stepRcpt = "RCPT TO"
	stepData = "DATA"
	stepBdat = "BDAT"
	stepBody = "message data"
)

// errPeerClosed: the server closed the kept connection (or said something
// unasked, such as a 421 before closing it) while it was idle.
var errPeerClosed = errors.New("the server closed the connection")

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
	// kept: the server refused the transaction and the session is ready
	// for the next one (after RSET), so the connection stays open.
	kept bool
}

func (e *txError) Error() string { return fmt.Sprintf("smtp %s failed: %v", e.step, e.err) }
func (e *txError) Unwrap() error { return e.err }

// sessionKept reports whether err left the session usable.
func sessionKept(err error) bool {
	var te *txError
	return errors.As(err, &te) && te.kept
}

// replied reports whether err is the server's reply rather than a broken
// connection.
func replied(err error) bool {
	var pe *textproto.Error
	return errors.As(err, &pe)
}

// ascii reports whether s is printable ASCII, as an envelope address
// without SMTPUTF8 must be.
func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// sendWire sends a prepared message on the open session. When the server
// offers PIPELINING (RFC 2920) and CHUNKING (RFC 3030), MAIL FROM, RCPT
// TO and BDAT LAST with the message go in one write and their three
// replies are read: one round trip. With PIPELINING alone, MAIL FROM,
// RCPT TO and DATA go in one write, then the message: two round trips.
// Otherwise, or when the envelope is not ASCII (it then needs SMTPUTF8,
// which go-mail negotiates), the commands go one after the other.
// reused says the session carried an earlier message.
func (w *smtpWorker) sendWire(m *Message, reused bool) error {
	sc := w.sc
	if err := sc.UpdateDeadline(w.s.timeout); err != nil {
		return &txError{step: stepMail, err: err}
	}
	pipelining, _ := sc.Extension("PIPELINING")
	if !pipelining || !ascii(m.From) || !ascii(m.To) {
		return w.sendWireSteps(m)
	}
	chunking, _ := sc.Extension("CHUNKING")
	if chunking && reused && w.peerClosed() {
		// With BDAT the message goes with MAIL FROM: once written, it
		// may have been taken even when no reply comes back, so a lost
		// connection is looked for before, not after.
		return &txError{step: stepMail, err: errPeerClosed, gone: true}
	}

	b := getWireBuffer()
	defer putWireBuffer(b)
	size := m.wire.size(&m.vals)
	buf := append((*b)[:0], "MAIL FROM:<"...)
	buf = append(buf, m.From...)
	buf = append(buf, '>')
	if ok, _ := sc.Extension("SIZE"); ok {
		buf = append(buf, " SIZE="...)
		buf = strconv.AppendInt(buf, int64(size), 10)
	}
	mailEnd := len(buf)
	buf = append(buf, "\r\nRCPT TO:<"...)
	buf = append(buf, m.To...)
	buf = append(buf, ">\r\n"...)
	rcptEnd := len(buf) - 2
	last := stepData
	if chunking {
		last = stepBdat
		buf = append(buf, "BDAT "...)
		buf = strconv.AppendInt(buf, int64(size), 10)
		buf = append(buf, " LAST\r\n"...)
	} else {
		buf = append(buf, "DATA\r\n"...)
	}
	cmdEnd := len(buf) - 2
	if w.debug {
		w.logClient(string(buf[:mailEnd]))
		w.logClient(string(buf[mailEnd+2 : rcptEnd]))
		w.logClient(string(buf[rcptEnd+2 : cmdEnd]))
		if chunking {
			w.logClient(fmt.Sprintf("(the message, %d bytes, not logged)", size))
		}
	}
	if chunking {
		buf = m.appendTo(buf)
	}
	*b = buf
	if _, err := sc.Text.W.Write(buf); err != nil {
		return &txError{step: stepMail, err: err, gone: !chunking}
	}
	if err := sc.Text.W.Flush(); err != nil {
		return &txError{step: stepMail, err: err, gone: !chunking}
	}

	// The three replies, in order. Without a reply to MAIL FROM, nothing
	// was taken when the message was still to come (DATA); with BDAT it
	// may have been.
	mailErr := w.reply(250)
	if mailErr != nil && !replied(mailErr) {
		return &txError{step: stepMail, err: mailErr, gone: !chunking}
	}
	rcptErr := w.reply(25)
	if rcptErr != nil && !replied(rcptErr) {
		return &txError{step: stepRcpt, err: rcptErr}
	}
	expect := 354
	if chunking {
		expect = 250
	}
	lastErr := w.reply(expect)
	if lastErr != nil && !replied(lastErr) {
		return &txError{step: last, err: lastErr}
	}
	var err error
	switch {
	case mailErr != nil:
		err = &txError{step: stepMail, err: mailErr}
	case rcptErr != nil:
		err = &txError{step: stepRcpt, err: rcptErr}
	case lastErr != nil:
		err = &txError{step: last, err: lastErr}
	}
	if !chunking && lastErr == nil {
		// 354: the server waits for the message. After a refused MAIL
		// FROM or RCPT TO (which a server should answer DATA with a
		// refusal, not 354) it gets none: the data ends at once.
		if err := sc.UpdateDeadline(w.s.timeout); err != nil {
			return &txError{step: stepBody, err: err}
		}
		if berr := w.writeBody(m, err == nil); berr != nil {
			return &txError{step: stepBody, err: berr}
		}
		if berr := w.reply(250); berr != nil {
			if !replied(berr) {
				return &txError{step: stepBody, err: berr}
			}
			if err == nil {
				err = &txError{step: stepBody, err: berr}
			}
		}
	}
	if err != nil {
		return w.resetAfter(err.(*txError))
	}
	return nil
}

// writeBody writes the message after DATA's 354 reply, dot-stuffed and
// ended by a line with a dot; an empty one when !send.
func (w *smtpWorker) writeBody(m *Message, send bool) error {
	if w.debug {
		w.logClient("(the message, not logged)")
	}
	dw := w.sc.Text.DotWriter()
	if send {
		b := getWireBuffer()
		*b = m.appendTo(*b)
		_, err := dw.Write(*b)
		putWireBuffer(b)
		if err != nil {
			_ = dw.Close()
			return err
		}
	}
	return dw.Close()
}

// resetAfter ends a transaction the server refused with RSET, so the
// connection can carry the next message; err is returned either way,
// marked kept when the reset worked.
func (w *smtpWorker) resetAfter(err *txError) error {
	if w.debug {
		w.logClient("RSET")
	}
	if _, werr := w.sc.Text.W.WriteString("RSET\r\n"); werr == nil {
		if w.sc.Text.W.Flush() == nil && w.reply(250) == nil {
			err.kept = true
		}
	}
	return err
}

// reply reads one reply, logging it to the transcript.
func (w *smtpWorker) reply(expect int) error {
	code, msg, err := w.sc.Text.ReadResponse(expect)
	if w.debug && (err == nil || replied(err)) {
		w.log.Debugf(log.Log{Direction: log.DirServerToClient, Format: "%d %s", Messages: []any{code, msg}})
	}
	return err
}

func (w *smtpWorker) logClient(line string) {
	w.log.Debugf(log.Log{Direction: log.DirClientToServer, Format: "%s", Messages: []any{line}})
}

// sendWireSteps sends a prepared message one command after the other, as
// go-mail does.
func (w *smtpWorker) sendWireSteps(m *Message) error {
	sc := w.sc
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
