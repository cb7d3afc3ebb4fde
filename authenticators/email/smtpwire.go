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
	// retry: the refusal may be due to the session, not to the message
	// (it followed a refused RSET), so it is retried whatever its code.
	retry bool
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
// replies are read: one round trip (sendChunked). With PIPELINING alone,
// MAIL FROM, RCPT TO and DATA go in one write, then the message: two
// round trips. Otherwise, or when the envelope is not ASCII (it then
// needs SMTPUTF8, which go-mail negotiates), the commands go one after
// the other. reused says the session carried an earlier message.
func (w *smtpWorker) sendWire(m *Message, reused bool) error {
	sc := w.sc
	pipelining, _ := sc.Extension("PIPELINING")
	if pipelining && ascii(m.From) && ascii(m.To) {
		if chunking, _ := sc.Extension("CHUNKING"); chunking {
			ms, errs := [1]*Message{m}, [1]error{}
			if kept := w.sendChunked(ms[:], reused, errs[:]); kept && errs[0] != nil {
				errs[0].(*txError).kept = true
			}
			return errs[0]
		}
	}
	if err := sc.UpdateDeadline(w.s.timeout); err != nil {
		return &txError{step: stepMail, err: err}
	}
	if !pipelining || !ascii(m.From) || !ascii(m.To) {
		return w.sendWireSteps(m)
	}

	b := getWireBuffer()
	defer putWireBuffer(b)
	buf := w.appendEnvelope((*b)[:0], m, m.wire.size(&m.vals))
	if w.debug {
		w.logClient("DATA")
	}
	buf = append(buf, "DATA\r\n"...)
	*b = buf
	// Nothing of the message goes before the 354 reply: a lost
	// connection took none of it.
	if _, err := sc.Text.W.Write(buf); err != nil {
		return &txError{step: stepMail, err: err, gone: true}
	}
	if err := sc.Text.W.Flush(); err != nil {
		return &txError{step: stepMail, err: err, gone: true}
	}

	// The three replies, in order.
	mailErr := w.reply(250)
	if mailErr != nil && !replied(mailErr) {
		return &txError{step: stepMail, err: mailErr, gone: true}
	}
	rcptErr := w.reply(25)
	if rcptErr != nil && !replied(rcptErr) {
		return &txError{step: stepRcpt, err: rcptErr}
	}
	dataErr := w.reply(354)
	if dataErr != nil && !replied(dataErr) {
		return &txError{step: stepData, err: dataErr}
	}
	var err error
	switch {
	case mailErr != nil:
		err = &txError{step: stepMail, err: mailErr}
	case rcptErr != nil:
		err = &txError{step: stepRcpt, err: rcptErr}
	case dataErr != nil:
		err = &txError{step: stepData, err: dataErr}
	}
	if dataErr == nil {
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

// appendEnvelope appends MAIL FROM (with the message's size when the
// server takes SIZE) and RCPT TO for m to buf, and logs them.
func (w *smtpWorker) appendEnvelope(buf []byte, m *Message, size int) []byte {
	start := len(buf)
	buf = append(buf, "MAIL FROM:<"...)
	buf = append(buf, m.From...)
	buf = append(buf, '>')
	if ok, _ := w.sc.Extension("SIZE"); ok {
		buf = append(buf, " SIZE="...)
		buf = strconv.AppendInt(buf, int64(size), 10)
	}
	mailEnd := len(buf)
	buf = append(buf, "\r\nRCPT TO:<"...)
	buf = append(buf, m.To...)
	buf = append(buf, '>')
	if w.debug {
		w.logClient(string(buf[start:mailEnd]))
		w.logClient(string(buf[mailEnd+2:]))
	}
	return append(buf, "\r\n"...)
}

// sendChunked sends prepared messages with ASCII envelopes on the open
// session, which offers PIPELINING and CHUNKING, in one write: for each
// message MAIL FROM, RCPT TO and BDAT LAST with the message, and RSET
// before every MAIL FROM but the first. Then it reads the replies, in
// order, and sets errs[i] to message i's outcome (chunkReplies): nil when
// its BDAT LAST was answered 250, or the first refusal of its transaction
// (a refused RCPT TO, for instance, is its outcome, not the refusal of the
// BDAT that follows), or what broke the connection. reused says the
// session carried an earlier message. It reports whether the session can
// carry the next message.
//
// The replies of a batch are a few kilobytes at most, far less than a
// socket buffers, so the server never waits to write them while the batch
// is still being written.
//
// RSET: a refused transaction stays open (RFC 5321 4.1.4), and servers
// such as Postfix and Exim refuse the MAIL FROM that follows it ("nested
// MAIL command") until RSET. Which transaction the server will refuse is
// not known when the batch is written, so every one but the first is
// preceded by RSET, which after a completed transaction changes nothing
// and costs a line each way in the same round trip. A refused last
// transaction is reset afterwards (resetAfter), as a message sent alone.
//
// A lost connection: each message goes with its commands, so once the
// batch is written, a message whose last reply did not arrive, and every
// message after it, may have been taken by the server. They fail as
// transient, and are not sent again on a new connection within the
// attempt (the queue retries them after their backoff), as a message sent
// alone. Only a kept connection found closed before the write took none
// of them (gone): the non-blocking look at the socket before writing.
func (w *smtpWorker) sendChunked(ms []*Message, reused bool, errs []error) (kept bool) {
	sc := w.sc
	fail := func(from int, step string, err error, gone bool) {
		for i := from; i < len(ms); i++ {
			errs[i] = &txError{step: step, err: err, gone: gone}
		}
	}
	if err := sc.UpdateDeadline(w.s.timeout); err != nil {
		fail(0, stepMail, err, false)
		return false
	}
	if reused && w.peerClosed() {
		// With BDAT the message goes with MAIL FROM: once written, it
		// may have been taken even when no reply comes back, so a lost
		// connection is looked for before, not after.
		fail(0, stepMail, errPeerClosed, true)
		return false
	}

	b := getWireBuffer()
	defer putWireBuffer(b)
	buf := (*b)[:0]
	for i, m := range ms {
		if i > 0 {
			if w.debug {
				w.logClient("RSET")
			}
			buf = append(buf, "RSET\r\n"...)
		}
		size := m.wire.size(&m.vals)
		buf = w.appendEnvelope(buf, m, size)
		start := len(buf)
		buf = append(buf, "BDAT "...)
		buf = strconv.AppendInt(buf, int64(size), 10)
		buf = append(buf, " LAST"...)
		if w.debug {
			w.logClient(string(buf[start:]))
			w.logClient(fmt.Sprintf("(the message, %d bytes, not logged)", size))
		}
		buf = append(buf, "\r\n"...)
		buf = m.appendTo(buf)
	}
	*b = buf
	if _, err := sc.Text.W.Write(buf); err != nil {
		fail(0, stepMail, err, false)
		return false
	}
	if err := sc.Text.W.Flush(); err != nil {
		fail(0, stepMail, err, false)
		return false
	}

	unsure := false
	for i := range ms {
		if i > 0 {
			if err := w.reply(250); err != nil {
				if !replied(err) {
					fail(i, stepMail, err, false)
					return false
				}
				// A refused RSET leaves the session in a state this
				// side does not know, so what the server refuses after
				// it may be due to it: retried whatever its code.
				unsure = true
			}
		}
		lost, err := w.chunkReplies()
		errs[i] = err
		if lost {
			fail(i+1, stepMail, err.(*txError).err, false)
			return false
		}
		if err != nil && unsure {
			err.(*txError).retry = true
		}
	}
	if errs[len(ms)-1] != nil {
		return w.reset()
	}
	return true
}

// chunkReplies reads the replies to MAIL FROM, RCPT TO and BDAT LAST of
// one transaction and returns its outcome: nil when BDAT LAST was
// answered 250 (the server took the message), or else the first refusal.
// lost reports that the connection broke before the last reply; err is
// then what broke it.
func (w *smtpWorker) chunkReplies() (lost bool, err error) {
	mailErr := w.reply(250)
	if mailErr != nil && !replied(mailErr) {
		return true, &txError{step: stepMail, err: mailErr}
	}
	rcptErr := w.reply(25)
	if rcptErr != nil && !replied(rcptErr) {
		return true, &txError{step: stepRcpt, err: rcptErr}
	}
	bdatErr := w.reply(250)
	if bdatErr != nil && !replied(bdatErr) {
		return true, &txError{step: stepBdat, err: bdatErr}
	}
	switch {
	case bdatErr == nil:
		// The server took the message, whatever it said before.
		return false, nil
	case mailErr != nil:
		return false, &txError{step: stepMail, err: mailErr}
	case rcptErr != nil:
		return false, &txError{step: stepRcpt, err: rcptErr}
	}
	return false, &txError{step: stepBdat, err: bdatErr}
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
	err.kept = w.reset()
	return err
}

// reset sends RSET and reports whether the server took it.
func (w *smtpWorker) reset() bool {
	if w.debug {
		w.logClient("RSET")
	}
	if _, err := w.sc.Text.W.WriteString("RSET\r\n"); err != nil {
		return false
	}
	return w.sc.Text.W.Flush() == nil && w.reply(250) == nil
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
