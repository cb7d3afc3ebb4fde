package email

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// batchCodes returns n code messages to user0@example.com,
// user1@example.com..., each with a code of its own; the challenge ID is
// the recipient's index.
func batchCodes(n int) []authenticators.Message {
	ms := make([]authenticators.Message, n)
	for i := range ms {
		to := fmt.Sprintf("user%d@example.com", i)
		ms[i] = authenticators.Message{ChallengeID: strconv.Itoa(i), User: "user" + strconv.Itoa(i), To: to,
			Code: strconv.Itoa(314159 + 271*i), TTL: 10 * time.Minute, Site: "app.example.com"}
	}
	return ms
}

// batchMessages returns the prepared messages of batchCodes(n).
func batchMessages(t *testing.T, n int) []*Message {
	t.Helper()
	c := wireConfig(t, testFrom)
	var out []*Message
	for _, am := range batchCodes(n) {
		m, err := c.message(am, am.To, Mask(am.To), i18n.Builtin().English())
		if err != nil {
			t.Fatal(err)
		}
		if m.wire == nil {
			t.Fatal("message not prepared")
		}
		out = append(out, m)
	}
	return out
}

// queueBatch delivers a first message, so the worker of c holds a
// connection; holds the server at the next MAIL FROM and delivers a
// second one, which the worker sends alone and then waits on; queues ms
// behind it and lets the server go on. The worker then finds ms waiting
// and takes them together. The first two messages go to testTo.
func queueBatch(t *testing.T, s *smtptest.Server, c *Config, ms []authenticators.Message) {
	t.Helper()
	if err := c.Deliver(t.Context(), testMessage()); err != nil {
		t.Fatal(err)
	}
	// A done context: Deliver queues the message and returns.
	queued, cancel := context.WithCancel(context.Background())
	cancel()
	s.Hold(smtptest.StageMail, 1)
	held := testMessage()
	held.ChallengeID = "held"
	if err := c.Deliver(queued, held); err != nil {
		t.Fatal(err)
	}
	if !s.WaitHeld(1, 10*time.Second) {
		t.Fatal("the worker's second message did not reach the server")
	}
	for _, m := range ms {
		if err := c.Deliver(queued, m); err != nil {
			t.Fatal(err)
		}
	}
	s.Release()
}

// byChallenge groups delivery results by challenge ID.
func byChallenge(rs []authenticators.DeliveryResult) map[string][]authenticators.DeliveryResult {
	out := map[string][]authenticators.DeliveryResult{}
	for _, r := range rs {
		out[r.ChallengeID] = append(out[r.ChallengeID], r)
	}
	return out
}

// transcriptLines returns the lines of the SMTP transcript, each with
// "C: " or "S: " before it.
func transcriptLines(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		if e.Message != "smtp transcript" {
			continue
		}
		from := "C: "
		if e.ContextMap()["from"] == "server" {
			from = "S: "
		}
		out = append(out, from+e.ContextMap()["line"].(string))
	}
	return out
}

// The code messages waiting in the queue go to go-smtp (STARTTLS, AUTH)
// as one pipelined batch on the kept connection: every transaction of the
// batch is written before the first reply is read, one round trip, with
// RSET between transactions; each message arrives once, in order, and is
// reported sent on its first attempt. The transcript masks every code and
// address.
func TestWireBatchOneRoundTrip(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{Username: "mailer", Password: "pw"})
	c, rec, logs := smtpTranscript(t, s)
	codes := batchCodes(6)
	queueBatch(t, s, c, codes)

	results := byChallenge(rec.wait(2 + len(codes)))
	msgs := s.WaitMessages(2+len(codes), 10*time.Second)
	if len(msgs) != 2+len(codes) || s.Connections() != 1 || s.Auths() != 1 {
		t.Fatalf("messages %d, connections %d, auths %d; want %d, 1, 1", len(msgs), s.Connections(), s.Auths(), 2+len(codes))
	}
	for i, am := range codes {
		m := msgs[2+i]
		if len(m.To) != 1 || m.To[0] != am.To || !bytes.Contains(m.Data, []byte(am.Code)) || !m.TLS || m.User != "mailer" {
			t.Errorf("message %d: to %v, TLS %v, user %q; want %s with its code", i, m.To, m.TLS, m.User, am.To)
		}
		if r := results[am.ChallengeID]; len(r) != 1 || !r[0].OK || r[0].Attempt != 1 {
			t.Errorf("results of %s: %+v, want one success", am.To, r)
		}
	}

	tr := turns(t, logs)
	want := []int{1, 1, 1, 0, 0, 0, 0, 0} // the first message, the held one, the batch
	if fmt.Sprint(tr) != fmt.Sprint(want) {
		t.Errorf("client turns per transaction = %v, want %v", tr, want)
	}
	lines := transcriptLines(logs)
	joined := strings.Join(lines, "\n")
	if n := strings.Count(joined, "C: RSET"); n != len(codes)-1 {
		t.Errorf("%d RSETs in the transcript, want %d", n, len(codes)-1)
	}
	for _, am := range codes {
		for _, secret := range []string{am.Code, am.To} {
			if strings.Contains(joined, secret) {
				t.Errorf("transcript reveals %q", secret)
			}
		}
	}
	// The batch, from its first MAIL FROM to its last reply.
	first := 0
	for i, l := range lines {
		if strings.HasPrefix(l, "C: MAIL FROM") {
			first = i
		}
		if strings.HasPrefix(l, "C: RSET") {
			break
		}
	}
	for first > 0 && !strings.HasPrefix(lines[first], "C: MAIL FROM") {
		first--
	}
	t.Logf("transcript of the batch:\n%s", strings.Join(lines[first:], "\n"))
}

// A batch in which go-smtp refuses one RCPT TO with 550 and another with
// 451: each message gets its own outcome (the refusal of its RCPT TO, not
// go-smtp's 502 to the BDAT that follows it), the 550 one fails for good,
// the 451 one is retried and arrives once, the others arrive once on
// their first attempt, and the connection, reset, stays open.
func TestWireBatchRefusals(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{Username: "mailer", Password: "pw"})
	c, rec, logs := smtpTranscript(t, s)
	codes := batchCodes(5)
	s.RejectRecipient(codes[1].To, 550, -1)
	s.RejectRecipient(codes[3].To, 451, 1)
	queueBatch(t, s, c, codes)

	results := byChallenge(rec.wait(2 + len(codes) + 1))
	for i, am := range codes {
		r := results[am.ChallengeID]
		switch i {
		case 1:
			if len(r) != 1 || r[0].OK || !r[0].Permanent || !strings.Contains(r[0].Error, "RCPT TO") || !strings.Contains(r[0].Error, "550") {
				t.Errorf("results of the 550 one: %+v, want one permanent RCPT TO failure", r)
			}
		case 3:
			if len(r) != 2 || r[0].OK || r[0].Permanent || !strings.Contains(r[0].Error, "451") || !r[1].OK || r[1].Attempt != 2 {
				t.Errorf("results of the 451 one: %+v, want a transient failure, then success", r)
			}
		default:
			if len(r) != 1 || !r[0].OK || r[0].Attempt != 1 {
				t.Errorf("results of %s: %+v, want one success", am.To, r)
			}
		}
		for _, x := range r {
			if strings.Contains(x.Error, am.Code) || strings.Contains(x.Error, am.To) {
				t.Errorf("error %q reveals the code or the address", x.Error)
			}
		}
	}
	got := map[string]int{}
	for _, m := range s.WaitMessages(2+len(codes)-1, 10*time.Second) {
		got[strings.Join(m.To, ",")]++
	}
	for i, am := range codes {
		if want := map[bool]int{true: 0, false: 1}[i == 1]; got[am.To] != want {
			t.Errorf("%s got %d messages, want %d", am.To, got[am.To], want)
		}
	}
	if s.Connections() != 1 {
		t.Errorf("connections = %d, want 1", s.Connections())
	}
	t.Logf("transcript:\n%s", strings.Join(transcriptLines(logs), "\n"))
}

// rawBatchWorker returns a worker of an smtp transport without TLS for
// s, and sends a first message so it holds a connection.
func rawBatchWorker(t *testing.T, s *rawServer, logger *zap.Logger) delivery.BatchWorker[*Message] {
	t.Helper()
	w := smtpWorkerFor(t, s.addr, &SMTP{TLS: TLSNone, Timeout: caddy.Duration(10 * time.Second)}, logger)
	if err := w.Send(t.Context(), preparedMessage(t, testFrom, testTo)); err != nil {
		t.Fatal(err)
	}
	return w.(delivery.BatchWorker[*Message])
}

// The server sees the batch as one write: it answers nothing until it has
// read every message of it, which a client that waited for a reply before
// writing the rest would wait for in vain. Each message goes with its SIZE
// and arrives once, exactly as WriteTo writes it.
func TestWireBatchOneWrite(t *testing.T) {
	s := newRawServer(t, "PIPELINING", "CHUNKING", "SIZE 1000000")
	w := rawBatchWorker(t, s, nil)
	ms := batchMessages(t, 16)
	s.mu.Lock()
	s.hold = len(ms)
	s.mu.Unlock()
	for i, err := range w.SendBatch(t.Context(), ms) {
		if err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
	var want []string
	for i, m := range ms {
		if i > 0 {
			want = append(want, "RSET")
		}
		size := strconv.Itoa(len(written(t, m)))
		want = append(want, "MAIL FROM:<noreply@example.com> SIZE="+size, "RCPT TO:<"+m.To+">", "BDAT "+size+" LAST")
	}
	cmds := s.commands()
	if len(cmds) < len(want) {
		t.Fatalf("commands %+v", cmds)
	}
	for i, c := range cmds[len(cmds)-len(want):] {
		if c.line != want[i] {
			t.Errorf("command %d = %q, want %q", i, c.line, want[i])
		}
	}
	s.mu.Lock()
	msgs := s.msgs
	s.mu.Unlock()
	if len(msgs) != 1+len(ms) {
		t.Fatalf("server got %d messages, want %d", len(msgs), 1+len(ms))
	}
	for i, m := range ms {
		if !bytes.Equal(msgs[1+i], written(t, m)) {
			t.Errorf("message %d differs from WriteTo", i)
		}
	}
	if c, _ := s.counts(); c != 1 {
		t.Errorf("connections = %d, want 1", c)
	}
}

// A refused transaction stays open until RSET, and a server such as
// Postfix refuses the MAIL FROM that follows it: the RSET written between
// the transactions of a batch lets the message after a refused one
// through. A refused last transaction is reset after the batch, and the
// connection carries the next message.
func TestWireBatchResetBetweenTransactions(t *testing.T) {
	s := newRawServer(t, "PIPELINING", "CHUNKING")
	s.strict = true
	w := rawBatchWorker(t, s, nil)
	ms := batchMessages(t, 4)
	s.mu.Lock()
	s.refuseRcpt = map[string]int{ms[1].To: 550}
	s.mu.Unlock()
	errs := w.SendBatch(t.Context(), ms[:3])
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("SendBatch() = %v, want the first and last sent", errs)
	}
	if errs[1] == nil || !delivery.IsPermanent(errs[1]) || !strings.Contains(errs[1].Error(), "550") {
		t.Fatalf("refused message: %v, want a permanent 550", errs[1])
	}
	errs = w.SendBatch(t.Context(), []*Message{ms[3], ms[1]})
	if errs[0] != nil || !delivery.IsPermanent(errs[1]) {
		t.Fatalf("SendBatch() = %v, want the first sent and the last refused", errs)
	}
	if err := w.Send(t.Context(), ms[0]); err != nil {
		t.Fatal(err)
	}
	if c, n := s.counts(); c != 1 || n != 5 {
		t.Errorf("connections = %d, messages = %d; want 1 and 5", c, n)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nested != 0 {
		t.Errorf("%d MAIL FROM refused in an open transaction", s.nested)
	}
}

// A server that refuses RSET leaves the session in a state the client
// does not know. A message whose BDAT LAST it answers 250 was taken,
// whatever it said to the commands before (here a nested MAIL FROM it
// refused, whose RCPT TO joined the transaction left open); a refusal
// after a refused RSET is retried, not final; and a session whose last
// RSET was refused is not kept.
func TestWireBatchRefusedReset(t *testing.T) {
	s := newRawServer(t, "PIPELINING", "CHUNKING")
	s.strict, s.refuseRset = true, true
	w := rawBatchWorker(t, s, nil)
	ms := batchMessages(t, 5)
	s.mu.Lock()
	s.refuseRcpt = map[string]int{ms[1].To: 550, ms[3].To: 550, ms[4].To: 550}
	s.mu.Unlock()
	errs := w.SendBatch(t.Context(), ms[:3])
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("SendBatch() = %v, want the first and the third sent", errs)
	}
	if errs[1] == nil || delivery.IsPermanent(errs[1]) {
		t.Fatalf("second message: %v, want a transient error", errs[1])
	}
	if c, n := s.counts(); c != 1 || n != 3 {
		t.Fatalf("connections = %d, messages = %d; want 1 and 3", c, n)
	}
	errs = w.SendBatch(t.Context(), ms[3:])
	if !delivery.IsPermanent(errs[0]) || errs[1] == nil || delivery.IsPermanent(errs[1]) || !strings.Contains(errs[1].Error(), "503") {
		t.Fatalf("SendBatch() = %v, want a permanent refusal, then a nested MAIL FROM to retry", errs)
	}
	s.mu.Lock()
	s.refuseRset = false
	s.mu.Unlock()
	if err := w.Send(t.Context(), ms[0]); err != nil {
		t.Fatal(err)
	}
	if c, n := s.counts(); c != 2 || n != 4 {
		t.Errorf("connections = %d, messages = %d; want 2 and 4", c, n)
	}
}

// The server takes the third message of a batch and hangs up unanswered:
// the first two were answered and are sent; the third may have been
// taken, and it and the two after it fail as transient without being
// sent again on a new connection within the attempt (the queue retries
// them). The next batch redials.
func TestWireBatchConnectionLost(t *testing.T) {
	s := newRawServer(t, "PIPELINING", "CHUNKING")
	w := rawBatchWorker(t, s, nil)
	ms := batchMessages(t, 7)
	s.mu.Lock()
	s.dropBody = 3
	s.mu.Unlock()
	errs := w.SendBatch(t.Context(), ms[:5])
	for i, err := range errs {
		if i < 2 && err != nil {
			t.Errorf("message %d: %v, want sent", i, err)
		}
		if i >= 2 && (err == nil || delivery.IsPermanent(err)) {
			t.Errorf("message %d: %v, want a transient error", i, err)
		}
	}
	if c, n := s.counts(); c != 1 || n != 1+3 {
		t.Errorf("connections = %d, messages = %d; want 1 and 4 (no second sending)", c, n)
	}
	for i, err := range w.SendBatch(t.Context(), ms[5:]) {
		if err != nil {
			t.Errorf("next batch, message %d: %v", i, err)
		}
	}
	if c, n := s.counts(); c != 2 || n != 1+3+2 {
		t.Errorf("connections = %d, messages = %d; want 2 and 6", c, n)
	}
}

// A kept connection that go-smtp closed while idle is found closed before
// the batch is written (nothing of it was sent): the batch goes on a new
// connection within the attempt, each message once.
func TestWireBatchRedialsClosedConnection(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{Username: "mailer", Password: "pw"})
	w := smtpWorkerFor(t, s.Addr, &SMTP{CAFile: s.CAFile, Username: "mailer", Password: "pw"}, nil)
	if err := w.Send(t.Context(), preparedMessage(t, testFrom, testTo)); err != nil {
		t.Fatal(err)
	}
	s.DropConnections()
	ms := batchMessages(t, 3)
	for i, err := range w.(delivery.BatchWorker[*Message]).SendBatch(t.Context(), ms) {
		if err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
	msgs := s.WaitMessages(4, 10*time.Second)
	if len(msgs) != 4 || s.Connections() != 2 {
		t.Fatalf("messages %d, connections %d; want 4 and 2", len(msgs), s.Connections())
	}
	for i, m := range ms {
		if msgs[1+i].To[0] != m.To {
			t.Errorf("message %d went to %v", i, msgs[1+i].To)
		}
	}
}

// A server without both PIPELINING and CHUNKING gets the messages of a
// batch one at a time, as when nothing waits: nothing of the next
// transaction follows DATA, and there is no RSET.
func TestWireBatchOneAtATime(t *testing.T) {
	for _, exts := range [][]string{{"8BITMIME"}, {"PIPELINING"}, {"CHUNKING"}} {
		t.Run(strings.Join(exts, ","), func(t *testing.T) {
			s := newRawServer(t, exts...)
			w := smtpWorkerFor(t, s.addr, &SMTP{TLS: TLSNone}, nil).(delivery.BatchWorker[*Message])
			ms := batchMessages(t, 3)
			for i, err := range w.SendBatch(t.Context(), ms) {
				if err != nil {
					t.Errorf("message %d: %v", i, err)
				}
			}
			txs := transactions(s.commands())
			if len(txs) != 3 {
				t.Fatalf("transactions %+v", txs)
			}
			for i, tx := range txs {
				if len(tx) != 3 || tx[1].line != "RCPT TO:<"+ms[i].To+">" || tx[2].line != "DATA" || tx[2].pipelined {
					t.Errorf("transaction %d = %+v, want MAIL FROM, RCPT TO, DATA with nothing after it", i, tx)
				}
			}
			if c, n := s.counts(); c != 1 || n != 3 {
				t.Errorf("connections = %d, messages = %d; want 1 and 3", c, n)
			}
		})
	}
}

// A message that is not prepared (here: an address go-mail folds) is
// sent alone by go-mail; the prepared ones before and after it go as
// batches.
func TestWireBatchMixed(t *testing.T) {
	s := newRawServer(t, "PIPELINING", "CHUNKING")
	core, logs := observer.New(zapcore.DebugLevel)
	w := smtpWorkerFor(t, s.addr, &SMTP{TLS: TLSNone}, zap.New(core)).(delivery.BatchWorker[*Message])
	ms := batchMessages(t, 5)
	long := strings.Repeat("l", 60) + "@example.org"
	c := wireConfig(t, testFrom)
	odd, err := c.message(authenticators.Message{To: long, Code: testCode, Site: "x.example", TTL: time.Minute}, long, Mask(long), i18n.Builtin().English())
	if err != nil || odd.wire != nil {
		t.Fatalf("message() = %v, %v; want one built by go-mail", odd, err)
	}
	// Connected first, so the first batch starts on a kept connection.
	if err := w.Send(t.Context(), ms[0]); err != nil {
		t.Fatal(err)
	}
	ms[2] = odd
	for i, err := range w.SendBatch(t.Context(), ms) {
		if err != nil {
			t.Errorf("message %d: %v", i, err)
		}
	}
	tr := turns(t, logs)
	if len(tr) != 6 || tr[1] != 1 || tr[2] != 0 || tr[3] < 1 || tr[4] != 1 || tr[5] != 0 {
		t.Errorf("client turns per transaction = %v, want [1 1 0 n 1 0]", tr)
	}
	if c, n := s.counts(); c != 1 || n != 6 {
		t.Errorf("connections = %d, messages = %d; want 1 and 6", c, n)
	}
}

// The transcript of a batch masks the code of each of its messages.
func TestTranscriptMasksBatchCodes(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	tr := &transcript{logger: zap.New(core)}
	tr.setCodes([]string{"111111", "222222"})
	tr.Debugf(goMailLog("250 queued 111111 and 222222 for <%s>", testTo))
	tr.setCodes(nil)
	tr.Debugf(goMailLog("250 333333"))
	var got []string
	for _, e := range logs.All() {
		got = append(got, e.ContextMap()["line"].(string))
	}
	want := []string{"250 queued ****** and ****** for <j***@e***.com>", "250 333333"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("transcript %q, want %q", got, want)
	}
}
