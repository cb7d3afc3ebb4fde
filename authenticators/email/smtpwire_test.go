package email

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// rawServer is a tiny SMTP server on plain TCP that offers the extensions
// a test gives it, records each command and whether more input was
// already waiting when it was read (pipelined), and can refuse or drop.
type rawServer struct {
	addr string
	exts []string

	mu       sync.Mutex
	cmds     []rawCmd
	msgs     [][]byte
	conns    int
	sizeMax  int  // refuse MAIL FROM with a larger SIZE=
	dropMail bool // close the connection after the next transaction's commands, unanswered
	dropBody int  // close the connection after the n-th next message (1: the next), unanswered
	// hold keeps the replies until this many more messages (BDAT) were
	// read, then sends them at once: a client that waits for a reply
	// before writing the rest waits in vain.
	hold       int
	strict     bool           // refuse MAIL FROM in an open transaction, as Postfix and Exim do
	nested     int            // MAIL FROM refused so
	refuseRset bool           // refuse RSET, leaving the transaction open
	refuseRcpt map[string]int // reply code for RCPT TO of these addresses
}

type rawCmd struct {
	line      string
	pipelined bool
}

func newRawServer(t *testing.T, exts ...string) *rawServer {
	t.Helper()
	s := &rawServer{exts: exts}
	s.addr = smtptest.Listen(t, func(c net.Conn) {
		s.mu.Lock()
		s.conns++
		s.mu.Unlock()
		s.serve(c)
	})
	return s
}

func (s *rawServer) serve(c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	say := func(line string) {
		w.WriteString(line + "\r\n")
		s.mu.Lock()
		hold := s.hold
		s.mu.Unlock()
		if hold == 0 {
			w.Flush()
		}
	}
	say("220 raw ESMTP")
	rcpts, mail := 0, false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.cmds = append(s.cmds, rawCmd{line: line, pipelined: r.Buffered() > 0})
		sizeMax, dropMail, strict := s.sizeMax, s.dropMail, s.strict
		s.mu.Unlock()
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			w.WriteString("250-raw\r\n")
			for _, e := range s.exts {
				w.WriteString("250-" + e + "\r\n")
			}
			say("250 HELP")
		case "MAIL":
			if dropMail {
				s.mu.Lock()
				s.dropMail = false
				s.mu.Unlock()
				// Read what was pipelined with it, then hang up.
				for r.Buffered() > 0 {
					if _, err := r.ReadString('\n'); err != nil {
						break
					}
				}
				return
			}
			if mail && strict {
				s.mu.Lock()
				s.nested++
				s.mu.Unlock()
				say("503 5.5.1 nested MAIL command")
				continue
			}
			if _, v, ok := strings.Cut(arg, "SIZE="); ok && sizeMax > 0 {
				if n, _ := strconv.Atoi(v); n > sizeMax {
					say("552 5.3.4 message too big")
					continue
				}
			}
			rcpts, mail = 0, true
			say("250 2.1.0 ok")
		case "RCPT":
			if !mail {
				say("503 5.5.1 MAIL first")
				continue
			}
			s.mu.Lock()
			code := s.refuseRcpt[strings.Trim(strings.TrimPrefix(arg, "TO:"), "<>")]
			s.mu.Unlock()
			if code != 0 {
				say(strconv.Itoa(code) + " refused")
				continue
			}
			rcpts++
			say("250 2.1.5 ok")
		case "DATA":
			if rcpts == 0 {
				say("554 5.5.1 no valid recipients")
				continue
			}
			say("354 go ahead")
			// The message as sent, CRLF kept, dot-unstuffed.
			var data []byte
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data = append(data, strings.TrimPrefix(l, ".")...)
			}
			rcpts, mail = 0, false
			if !s.store(data) {
				return
			}
			say("250 2.0.0 queued")
		case "BDAT":
			f := strings.Fields(arg)
			n, _ := strconv.Atoi(f[0])
			data := make([]byte, n)
			if _, err := io.ReadFull(r, data); err != nil {
				return
			}
			if rcpts == 0 {
				say("554 5.5.1 no valid recipients")
				s.released(w)
				continue
			}
			rcpts, mail = 0, false
			if !s.store(data) {
				return
			}
			say("250 2.0.0 queued")
			s.released(w)
		case "RSET":
			s.mu.Lock()
			refuse := s.refuseRset
			s.mu.Unlock()
			if refuse {
				say("502 5.5.2 not now")
				continue
			}
			rcpts, mail = 0, false
			say("250 2.0.0 ok")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("500 5.5.2 unknown command")
		}
	}
}

// store keeps a message; false when the server is to hang up instead of
// answering (dropBody), after taking it.
func (s *rawServer) store(data []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, data)
	if s.dropBody > 0 {
		s.dropBody--
		return s.dropBody > 0
	}
	return true
}

// released counts a message read (BDAT) against hold, and sends the held
// replies when it is the last.
func (s *rawServer) released(w *bufio.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hold > 0 {
		if s.hold--; s.hold == 0 {
			w.Flush()
		}
	}
}

func (s *rawServer) commands() []rawCmd {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]rawCmd(nil), s.cmds...)
}

func (s *rawServer) counts() (conns, msgs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns, len(s.msgs)
}

// smtpWorkerFor provisions an smtp transport for host:port with tls and
// returns one of its delivery workers.
func smtpWorkerFor(t *testing.T, addr string, tr *SMTP, logger *zap.Logger) delivery.Worker[*Message] {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	tr.Host = host
	tr.Port, _ = strconv.Atoi(port)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := tr.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	w, err := tr.NewWorker(logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// preparedMessage returns a prepared code message from "from" to to.
func preparedMessage(t *testing.T, from, to string) *Message {
	t.Helper()
	c := wireConfig(t, from)
	m, err := c.message(authenticators.Message{To: to, Code: testCode, Site: "app.example.com"}, to, Mask(to), i18n.Builtin().English())
	if err != nil {
		t.Fatal(err)
	}
	if m.wire == nil {
		t.Fatal("message not prepared")
	}
	return m
}

func written(t *testing.T, m *Message) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := m.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// transactions returns, for each MAIL FROM the server saw, the commands
// of its transaction.
func transactions(cmds []rawCmd) [][]rawCmd {
	var txs [][]rawCmd
	for _, c := range cmds {
		if strings.HasPrefix(c.line, "MAIL FROM:") {
			txs = append(txs, nil)
		}
		if len(txs) > 0 && !strings.HasPrefix(c.line, "QUIT") {
			txs[len(txs)-1] = append(txs[len(txs)-1], c)
		}
	}
	return txs
}

// A server that offers neither PIPELINING nor CHUNKING gets the commands
// one at a time; with PIPELINING alone, MAIL FROM, RCPT TO and DATA come
// in one write and the message after the 354, dot-stuffed; with both,
// MAIL FROM, RCPT TO and BDAT LAST with the message. Each gets exactly the
// bytes WriteTo writes.
func TestWirePaths(t *testing.T) {
	for _, tc := range []struct {
		name      string
		exts      []string
		last      string
		pipelined bool
	}{
		{"neither", []string{"8BITMIME"}, "DATA", false},
		{"pipelining", []string{"PIPELINING", "8BITMIME"}, "DATA", true},
		{"pipelining and chunking", []string{"PIPELINING", "CHUNKING", "8BITMIME"}, "BDAT ", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newRawServer(t, tc.exts...)
			w := smtpWorkerFor(t, s.addr, &SMTP{TLS: TLSNone}, nil)
			// Lines that start with a dot, which DATA must stuff.
			c := wireConfig(t, testFrom)
			var err error
			if c.tmpl, err = loadTemplatesFrom(t, "", "Your code:\n.\n..{{.Code}}\n.end\n"); err != nil {
				t.Fatal(err)
			}
			var want [][]byte
			for range 3 {
				m, err := c.message(authenticators.Message{To: testTo, Code: testCode, Site: "app.example.com"}, testTo, Mask(testTo), i18n.Builtin().English())
				if err != nil || m.wire == nil {
					t.Fatalf("message() = %v, %v; want a prepared message", m, err)
				}
				if !bytes.Contains(written(t, m), []byte("\r\n.\r\n..493817\r\n.end")) {
					t.Fatalf("message lacks the lines with dots:\n%s", written(t, m))
				}
				if err := w.Send(t.Context(), m); err != nil {
					t.Fatalf("Send() = %v", err)
				}
				want = append(want, written(t, m))
			}
			s.mu.Lock()
			msgs := s.msgs
			s.mu.Unlock()
			if len(msgs) != 3 {
				t.Fatalf("server got %d messages", len(msgs))
			}
			for i := range msgs {
				if !bytes.Equal(msgs[i], want[i]) {
					t.Errorf("message %d differs from WriteTo:\n%q\n---\n%q", i, msgs[i], want[i])
				}
			}
			txs := transactions(s.commands())
			if len(txs) != 3 {
				t.Fatalf("transactions %v", txs)
			}
			for _, tx := range txs {
				if len(tx) != 3 || tx[0].line != "MAIL FROM:<noreply@example.com>" && !strings.HasPrefix(tx[0].line, "MAIL FROM:<noreply@example.com> ") ||
					tx[1].line != "RCPT TO:<"+testTo+">" || !strings.HasPrefix(tx[2].line, tc.last) {
					t.Fatalf("transaction %v", tx)
				}
				if tx[0].pipelined != tc.pipelined || tx[1].pipelined != tc.pipelined {
					t.Errorf("transaction %+v: pipelined %v, want %v", tx, tx[0].pipelined, tc.pipelined)
				}
			}
			if c, _ := s.counts(); c != 1 {
				t.Errorf("connections = %d, want 1", c)
			}
		})
	}
}

// An envelope that is not ASCII needs SMTPUTF8, which go-mail negotiates:
// the commands then go one at a time.
func TestWireNonASCIIEnvelopeNotPipelined(t *testing.T) {
	s := newRawServer(t, "PIPELINING", "CHUNKING", "8BITMIME", "SMTPUTF8")
	w := smtpWorkerFor(t, s.addr, &SMTP{TLS: TLSNone}, nil)
	m := preparedMessage(t, "Anmeldung <noreply@bücherei.example>", testTo)
	if err := w.Send(t.Context(), m); err != nil {
		t.Fatalf("Send() = %v", err)
	}
	txs := transactions(s.commands())
	if len(txs) != 1 || len(txs[0]) != 3 || txs[0][0].pipelined || !strings.Contains(txs[0][0].line, "SMTPUTF8") || txs[0][2].line != "DATA" {
		t.Fatalf("transaction %+v, want MAIL FROM with SMTPUTF8, RCPT TO, DATA one at a time", txs)
	}
}

// SIZE: the message's size goes with MAIL FROM; a server that refuses it
// refuses the transaction for good, and the connection carries the next
// message.
func TestWireSize(t *testing.T) {
	s := newRawServer(t, "PIPELINING", "CHUNKING", "SIZE 100")
	s.sizeMax = 100
	w := smtpWorkerFor(t, s.addr, &SMTP{TLS: TLSNone}, nil)
	m := preparedMessage(t, testFrom, testTo)
	err := w.Send(t.Context(), m)
	if err == nil || !delivery.IsPermanent(err) || !strings.Contains(err.Error(), "552") {
		t.Fatalf("Send() = %v, want a permanent 552", err)
	}
	txs := transactions(s.commands())
	if len(txs) != 1 || txs[0][0].line != "MAIL FROM:<noreply@example.com> SIZE="+strconv.Itoa(len(written(t, m))) {
		t.Fatalf("transactions %+v", txs)
	}
	s.mu.Lock()
	s.sizeMax = 0
	s.mu.Unlock()
	if err := w.Send(t.Context(), preparedMessage(t, testFrom, testTo)); err != nil {
		t.Fatal(err)
	}
	if c, n := s.counts(); c != 1 || n != 1 {
		t.Errorf("connections = %d, messages = %d; want 1 and 1", c, n)
	}
}

// A kept connection the server drops when the pipelined commands arrive,
// before any reply: with DATA nothing of the message was sent, so it is
// sent again on a new connection within the same attempt.
func TestWirePipelinedDropRedials(t *testing.T) {
	s := newRawServer(t, "PIPELINING")
	w := smtpWorkerFor(t, s.addr, &SMTP{TLS: TLSNone}, nil)
	if err := w.Send(t.Context(), preparedMessage(t, testFrom, testTo)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.dropMail = true
	s.mu.Unlock()
	if err := w.Send(t.Context(), preparedMessage(t, testFrom, testTo)); err != nil {
		t.Fatalf("Send() = %v, want success after a redial", err)
	}
	if c, n := s.counts(); c != 2 || n != 2 {
		t.Errorf("connections = %d, messages = %d; want 2 and 2", c, n)
	}
}

// With BDAT the message goes with the commands: a server that took it and
// hung up without a reply may have accepted it, so it is not sent again
// within the attempt; the error is transient, for the queue's retry.
func TestWireChunkLostReplyNotResent(t *testing.T) {
	s := newRawServer(t, "PIPELINING", "CHUNKING")
	w := smtpWorkerFor(t, s.addr, &SMTP{TLS: TLSNone}, nil)
	if err := w.Send(t.Context(), preparedMessage(t, testFrom, testTo)); err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.dropBody = 1
	s.mu.Unlock()
	err := w.Send(t.Context(), preparedMessage(t, testFrom, testTo))
	if err == nil || delivery.IsPermanent(err) {
		t.Fatalf("Send() = %v, want a transient error", err)
	}
	if c, n := s.counts(); c != 1 || n != 2 {
		t.Errorf("connections = %d, messages = %d; want 1 and 2 (no second sending)", c, n)
	}
	// The next message redials.
	if err := w.Send(t.Context(), preparedMessage(t, testFrom, testTo)); err != nil {
		t.Fatal(err)
	}
	if c, n := s.counts(); c != 2 || n != 3 {
		t.Errorf("connections = %d, messages = %d; want 2 and 3", c, n)
	}
}

// smtpTranscript provisions a Config with one worker against s (STARTTLS
// and AUTH), logging the transcript to the returned observer.
func smtpTranscript(t *testing.T, s *smtptest.Server) (*Config, *recorder, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	c := &Config{
		TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"username": "mailer", "password": "pw", "ca_file": s.CAFile}),
		From:         testFrom,
		Delivery:     &delivery.Config{Workers: 1},
		ch:           delivery.Channel[*Message]{Logger: zap.New(core)},
	}
	return c, provision(t, c), logs
}

// turns returns, for each mail transaction in the transcript, how often
// the client spoke after the server: 1 is one round trip.
func turns(t *testing.T, logs *observer.ObservedLogs) []int {
	t.Helper()
	var out []int
	last := ""
	for _, e := range logs.All() {
		if e.Message != "smtp transcript" {
			continue
		}
		from, line := e.ContextMap()["from"].(string), e.ContextMap()["line"].(string)
		if from == "client" && strings.HasPrefix(line, "MAIL FROM") {
			out = append(out, 0)
		}
		if len(out) > 0 && from == "client" && last != "client" && !strings.HasPrefix(line, "QUIT") {
			out[len(out)-1]++
		}
		last = from
	}
	return out
}

// With PIPELINING and CHUNKING (as go-smtp offers them),
// over STARTTLS with AUTH, each code message costs one round trip on the
// kept connection: MAIL FROM, RCPT TO and BDAT LAST with the message in
// one write, then the three replies.
func TestWireOneRoundTrip(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{Username: "mailer", Password: "pw"})
	c, _, logs := smtpTranscript(t, s)
	for i := range 4 {
		m := testMessage()
		m.ChallengeID = strconv.Itoa(i)
		if err := c.Deliver(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	msgs := s.WaitMessages(4, 0)
	if len(msgs) != 4 || s.Connections() != 1 || s.Auths() != 1 {
		t.Fatalf("messages %d, connections %d, auths %d; want 4, 1, 1", len(msgs), s.Connections(), s.Auths())
	}
	for _, m := range msgs {
		checkOneMessage(t, []smtptest.Message{m})
		if !m.TLS || m.User != "mailer" {
			t.Errorf("message over TLS %v as %q", m.TLS, m.User)
		}
	}
	tr := turns(t, logs)
	if len(tr) != 4 {
		t.Fatalf("transactions in the transcript: %v", tr)
	}
	for i, n := range tr {
		if n != 1 {
			t.Errorf("transaction %d took %d round trips, want 1", i, n)
		}
	}
	var all []string
	for _, e := range logs.All() {
		if e.Message == "smtp transcript" {
			all = append(all, e.ContextMap()["line"].(string))
		}
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{"MAIL FROM:<n***@e***.com>", "RCPT TO:<j***@e***.com>", " LAST"} {
		if !strings.Contains(joined, want) {
			t.Errorf("transcript lacks %q:\n%s", want, joined)
		}
	}
	for _, secret := range []string{testCode, testTo, "noreply@example.com"} {
		if strings.Contains(joined, secret) {
			t.Errorf("transcript reveals %q", secret)
		}
	}
}

// SECURITY.md 41: refusals of a pipelined transaction: a refused RCPT TO is permanent
// (5xx) or retried (4xx), a refused message too; nothing is delivered by
// the refused transaction, and the connection, reset, carries the next
// message.
func TestWirePipelinedRefusals(t *testing.T) {
	for _, tc := range []struct {
		stage     smtptest.Stage
		code      int
		permanent bool
	}{
		{smtptest.StageRcpt, 550, true},
		{smtptest.StageRcpt, 451, false},
		{smtptest.StageData, 554, true},
		{smtptest.StageData, 452, false},
		{smtptest.StageMail, 553, true},
	} {
		t.Run(strconv.Itoa(tc.code), func(t *testing.T) {
			s := smtptest.NewServer(t, smtptest.Options{Username: "mailer", Password: "pw"})
			c, rec, _ := smtpTranscript(t, s)
			if err := c.Deliver(t.Context(), testMessage()); err != nil {
				t.Fatal(err)
			}
			s.Reject(tc.stage, tc.code, 1)
			err := c.Deliver(t.Context(), testMessage())
			r := rec.get()
			if tc.permanent {
				if !errors.Is(err, authenticators.ErrDeliveryFailed) {
					t.Fatalf("Deliver() = %v, want ErrDeliveryFailed", err)
				}
				if len(r) != 2 || !r[1].Permanent || !strings.Contains(r[1].Error, strconv.Itoa(tc.code)) {
					t.Fatalf("results %+v, want a permanent %d", r, tc.code)
				}
				if n := len(s.Messages()); n != 1 {
					t.Fatalf("server got %d messages, want 1", n)
				}
			} else {
				if err != nil {
					t.Fatalf("Deliver() = %v", err)
				}
				if len(r) != 3 || r[1].OK || r[1].Permanent || !r[2].OK || r[2].Attempt != 2 {
					t.Fatalf("results %+v, want a transient failure then success", r)
				}
				if n := len(s.Messages()); n != 2 {
					t.Fatalf("server got %d messages, want 2", n)
				}
			}
			if err := c.Deliver(t.Context(), testMessage()); err != nil {
				t.Fatal(err)
			}
			if s.Connections() != 1 {
				t.Errorf("connections = %d, want 1 (the refused transaction reset, not the connection)", s.Connections())
			}
		})
	}
}
