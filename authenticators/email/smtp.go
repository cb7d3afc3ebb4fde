package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// TLS modes of the smtp transport.
const (
	TLSImplicit         = "implicit"
	TLSStartTLS         = "starttls"
	TLSStartTLSOptional = "starttls_optional"
	TLSNone             = "none"
)

// Defaults of the smtp transport.
const (
	DefaultSMTPTimeout     = 10 * time.Second
	DefaultSMTPIdleTimeout = 30 * time.Second
)

// SMTP sends mail through an SMTP server (a relay or a submission
// service), in the manner of NetIQ's Mail sender: host, port, optional
// authentication, sender, TLS. Each delivery worker keeps one connection
// open between messages and closes it after IdleTimeout, and sends the
// messages waiting in the queue as one pipelined batch.
type SMTP struct {
	// Host is the SMTP server's host name or IP address. Required.
	Host string `json:"host,omitempty"`
	// Port is the server's port. Default: 465 for implicit TLS, 587 for
	// starttls and starttls_optional, 25 for none.
	Port int `json:"port,omitempty"`
	// Username authenticates to the server, e.g. "noreply@example.com".
	// Placeholders such as {env.SMTP_USERNAME} are resolved at provision.
	Username string `json:"username,omitempty"`
	// Password authenticates to the server. Placeholders such as
	// {env.SMTP_PASSWORD} are resolved at provision.
	Password string `json:"password,omitempty"`
	// Auth says whether the server requires authentication. Default: on
	// when a username is set. The mechanism is negotiated: SCRAM-SHA-256,
	// SCRAM-SHA-1, PLAIN or LOGIN; PLAIN and LOGIN only over TLS (or to
	// localhost).
	Auth *bool `json:"auth,omitempty"`
	// TLS is how the connection is encrypted: "implicit" (TLS from the
	// first byte, port 465), "starttls" (STARTTLS required; the default),
	// "starttls_optional" (STARTTLS when the server offers it) or "none".
	TLS string `json:"tls,omitempty"`
	// Timeout bounds connecting and each exchange with the server.
	// Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// IdleTimeout is how long an unused connection stays open. Default:
	// 30s.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`
	// CAFile is a PEM file of root certificates to trust instead of the
	// system roots, for relays with an internal CA.
	CAFile string `json:"ca_file,omitempty"`
	// InsecureSkipVerify turns off certificate verification. Never use it
	// in production: anyone on the path can read the codes.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
	// HELO is the name sent in EHLO/HELO. Default: the host name of this
	// machine.
	HELO string `json:"helo,omitempty"`

	logger    *zap.Logger
	host      string
	port      int
	username  string
	password  string
	auth      bool
	mode      string
	timeout   time.Duration
	idle      time.Duration
	tlsConfig *tls.Config
}

// CaddyModule returns the Caddy module information.
func (SMTP) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "mfa.email_transports.smtp",
		New: func() caddy.Module { return new(SMTP) },
	}
}

// Provision resolves placeholders, applies defaults and loads the CA file.
func (s *SMTP) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	s.host = repl.ReplaceKnown(s.Host, "")
	s.username = repl.ReplaceKnown(s.Username, "")
	s.password = repl.ReplaceKnown(s.Password, "")
	s.auth = s.username != ""
	if s.Auth != nil {
		s.auth = *s.Auth
	}
	s.mode = s.TLS
	if s.mode == "" {
		s.mode = TLSStartTLS
	}
	s.port = s.Port
	if s.port == 0 {
		switch s.mode {
		case TLSImplicit:
			s.port = mail.DefaultPortSSL
		case TLSNone:
			s.port = mail.DefaultPort
		default:
			s.port = mail.DefaultPortTLS
		}
	}
	s.timeout = time.Duration(s.Timeout)
	if s.timeout == 0 {
		s.timeout = DefaultSMTPTimeout
	}
	s.idle = time.Duration(s.IdleTimeout)
	if s.idle == 0 {
		s.idle = DefaultSMTPIdleTimeout
	}

	if s.mode != TLSNone {
		s.tlsConfig = &tls.Config{
			ServerName:         s.host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: s.InsecureSkipVerify, //nolint:gosec // opt-in, logged below
		}
		if s.CAFile != "" {
			caFile := repl.ReplaceKnown(s.CAFile, "")
			pem, err := os.ReadFile(caFile)
			if err != nil {
				return fmt.Errorf("reading ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
			}
			s.tlsConfig.RootCAs = pool
		}
	}
	if s.InsecureSkipVerify && s.mode != TLSNone {
		s.logger.Warn("smtp certificate verification is off: anyone on the network path can read the codes",
			zap.String("host", s.host))
	}
	if s.mode == TLSNone || s.mode == TLSStartTLSOptional {
		s.logger.Warn("smtp connections may be unencrypted: codes can be read on the network path",
			zap.String("host", s.host), zap.String("tls", s.mode))
	}
	return nil
}

// Validate checks the resolved configuration.
func (s *SMTP) Validate() error {
	if s.host == "" {
		return errors.New("smtp: host is required")
	}
	if s.port < 1 || s.port > 65535 {
		return fmt.Errorf("smtp: port %d out of range", s.port)
	}
	switch s.mode {
	case TLSImplicit, TLSStartTLS, TLSStartTLSOptional, TLSNone:
	default:
		return fmt.Errorf("smtp: tls must be %s, %s, %s or %s, not %q",
			TLSImplicit, TLSStartTLS, TLSStartTLSOptional, TLSNone, s.mode)
	}
	if s.timeout < 0 || s.idle < 0 {
		return errors.New("smtp: timeouts must not be negative")
	}
	if s.auth && s.username == "" {
		return errors.New("smtp: auth is on but the username is empty")
	}
	if s.auth && s.password == "" {
		return errors.New("smtp: auth is on but the password is empty (is its environment variable set?)")
	}
	return nil
}

// Preferred authentication mechanisms, strongest first. go-mail's PLAIN
// and LOGIN refuse to run without TLS (except to localhost).
var authMechanisms = []mail.SMTPAuthType{
	mail.SMTPAuthSCRAMSHA256PLUS, mail.SMTPAuthSCRAMSHA256,
	mail.SMTPAuthSCRAMSHA1PLUS, mail.SMTPAuthSCRAMSHA1,
	mail.SMTPAuthPlain, mail.SMTPAuthLogin,
}

// Send sends m over a connection of its own, closed afterwards. The
// delivery queue sends through workers instead (NewWorker), which keep
// their connections open between messages.
func (s *SMTP) Send(ctx context.Context, m *Message) error {
	w, err := s.NewWorker(s.logger)
	if err != nil {
		return err
	}
	defer w.Close()
	return w.Send(ctx, m)
}

// NewWorker returns the state of one delivery worker: a go-mail client
// whose connection stays open between messages and closes after
// IdleTimeout. At debug level, logger receives the SMTP transcript with
// the code and the addresses masked.
func (s *SMTP) NewWorker(logger *zap.Logger) (delivery.Worker[*Message], error) {
	w := &smtpWorker{s: s, log: &transcript{logger: logger}, debug: logger.Core().Enabled(zap.DebugLevel)}
	opts := []mail.Option{
		mail.WithPort(s.port),
		mail.WithTimeout(s.timeout),
		mail.WithDialContextFunc(w.dial),
		// No NOOP before each message: it costs a round trip per message
		// to find out what MAIL FROM finds out anyway; send redials when
		// MAIL FROM on a kept connection fails without a server reply.
		mail.WithoutNoop(),
	}
	if s.tlsConfig != nil {
		opts = append(opts, mail.WithTLSConfig(s.tlsConfig))
	}
	switch s.mode {
	case TLSImplicit:
		// w.dial does the TLS handshake; WithSSL skips STARTTLS.
		opts = append(opts, mail.WithSSL())
	case TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case TLSStartTLSOptional:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if s.auth {
		opts = append(opts,
			mail.WithOpportunisticSMTPAuth(authMechanisms...),
			mail.WithUsername(s.username),
			mail.WithPassword(s.password))
	}
	if s.HELO != "" {
		opts = append(opts, mail.WithHELO(s.HELO))
	}
	if w.debug {
		opts = append(opts, mail.WithLogger(w.log), mail.WithDebugLog())
	}
	client, err := mail.NewClient(s.host, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating smtp client: %w", err)
	}
	w.client = client
	return w, nil
}

// smtpWorker is the state of one delivery worker: a go-mail client (its
// settings) and the SMTP session it dialled, kept open between messages.
type smtpWorker struct {
	s      *SMTP
	client *mail.Client
	log    *transcript
	sc     *smtp.Client // the session while connected
	debug  bool         // log the transcript

	mu        sync.Mutex
	raw       net.Conn // the TCP connection under the SMTP session
	connected bool
	busy      bool
	closed    bool
	idleTimer *time.Timer
}

// dial connects for go-mail and keeps the TCP connection, so the worker
// can always close it, even when go-mail gives up halfway (a failed
// greeting, STARTTLS or AUTH).
func (w *smtpWorker) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	if w.raw != nil {
		_ = w.raw.Close()
	}
	w.raw = raw
	w.mu.Unlock()
	if w.s.mode != TLSImplicit {
		return raw, nil
	}
	conn := tls.Client(raw, w.s.tlsConfig)
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return conn, nil
}

// Send delivers one message, reusing the open connection when there is
// one. Any failure closes the connection; the next message redials.
func (w *smtpWorker) Send(ctx context.Context, m *Message) error {
	secret := m.secret()
	w.log.setCode(secret)
	defer w.log.setCode("")

	reuse := w.begin()
	// Stopping the queue aborts the exchange in progress.
	stop := context.AfterFunc(ctx, w.abort)
	err := w.send(ctx, m, reuse)
	stop()
	w.end(err == nil || sessionKept(err))
	if err != nil {
		return classify(err, secret)
	}
	return nil
}

// SendBatch delivers the messages the queue had waiting, in order.
// Prepared code messages whose envelopes are ASCII go together when the
// server offers PIPELINING and CHUNKING: all their transactions in one
// write, one round trip (sendBatch). Any other message, and every message
// to a server without both, goes alone through Send, as when nothing
// waits. Each message has its own outcome.
func (w *smtpWorker) SendBatch(ctx context.Context, ms []*Message) []error {
	errs := make([]error, len(ms))
	pipelined := true
	for i := 0; i < len(ms); {
		if n := chunkable(ms[i:]); pipelined && n > 1 {
			if w.sendBatch(ctx, ms[i:i+n], errs[i:i+n]) {
				i += n
				continue
			}
			pipelined = false // not offered: the rest go alone too
		}
		errs[i] = w.Send(ctx, ms[i])
		i++
	}
	return errs
}

// chunkable returns how many messages at the start of ms may go in one
// pipelined batch: prepared messages whose envelopes are ASCII.
func chunkable(ms []*Message) int {
	for i, m := range ms {
		if m.wire == nil || !ascii(m.From) || !ascii(m.To) {
			return i
		}
	}
	return len(ms)
}

// sendBatch sends ms, chunkable messages, in one write (sendChunked), on
// the open connection or a new one, and sets their outcomes in errs. It
// returns false, having sent nothing, when the server does not offer
// PIPELINING and CHUNKING. A failure to connect is the outcome of every
// message.
func (w *smtpWorker) sendBatch(ctx context.Context, ms []*Message, errs []error) bool {
	secrets := make([]string, len(ms))
	for i, m := range ms {
		secrets[i] = m.secret()
	}
	w.log.setCodes(secrets)
	defer w.log.setCodes(nil)

	reuse := w.begin()
	stop := context.AfterFunc(ctx, w.abort)
	sent, kept := w.batch(ctx, ms, reuse, errs)
	stop()
	w.end(kept)
	if !sent {
		return false
	}
	for i, err := range errs {
		if err != nil {
			errs[i] = classify(err, secrets[i])
		}
	}
	return true
}

// batch does sendBatch's work on the connection, kept open when reuse.
func (w *smtpWorker) batch(ctx context.Context, ms []*Message, reuse bool, errs []error) (sent, kept bool) {
	if !reuse {
		if err := w.connect(ctx); err != nil {
			for i := range errs {
				errs[i] = err
			}
			return true, false
		}
	}
	pipelining, _ := w.sc.Extension("PIPELINING")
	chunking, _ := w.sc.Extension("CHUNKING")
	if !pipelining || !chunking {
		return false, true
	}
	kept = w.sendChunked(ms, reuse, errs)
	if reuse && connectionGone(errs[0]) {
		// The server dropped the kept connection, and nothing was
		// written: redial once.
		w.mu.Lock()
		w.disconnectLocked(false)
		w.mu.Unlock()
		return w.batch(ctx, ms, false, errs)
	}
	return true, kept
}

// begin marks the worker busy, so the idle timer leaves its connection
// alone, and reports whether a connection is open.
func (w *smtpWorker) begin() (connected bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy = true
	if w.idleTimer != nil {
		w.idleTimer.Stop()
	}
	return w.connected
}

// end marks the worker idle: the connection stays open for IdleTimeout
// when keep, and is closed otherwise.
func (w *smtpWorker) end(keep bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.busy = false
	if !keep {
		w.disconnectLocked(false)
	} else if !w.closed {
		w.idleTimer = time.AfterFunc(w.s.idle, w.closeIdle)
	}
}

func (w *smtpWorker) send(ctx context.Context, m *Message, reuse bool) error {
	if !reuse {
		if err := w.connect(ctx); err != nil {
			return err
		}
	}
	err := w.transact(m, reuse)
	if err != nil && reuse && connectionGone(err) {
		// The server dropped the kept connection: redial once.
		w.mu.Lock()
		w.disconnectLocked(false)
		w.mu.Unlock()
		if err := w.connect(ctx); err != nil {
			return err
		}
		err = w.transact(m, false)
	}
	return err
}

// transact runs one mail transaction on the open session: a prepared
// message's bytes (sendWire), or go-mail's for the others. reused says
// the session carried an earlier message.
func (w *smtpWorker) transact(m *Message, reused bool) error {
	if m.wire != nil {
		return w.sendWire(m, reused)
	}
	return w.client.SendWithSMTPClient(w.sc, m.msg)
}

// connectionGone reports whether a send on a kept connection failed
// before a mail transaction began, because the connection is gone: the
// connection check, or MAIL FROM failing without any reply from the
// server (a reply such as 550 is the server's answer, not a lost
// connection). Nothing of the message was accepted then, so sending it
// again on a new connection cannot deliver it twice.
func connectionGone(err error) bool {
	var te *txError
	if errors.As(err, &te) {
		return te.gone
	}
	var se *mail.SendError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Reason {
	case mail.ErrConnCheck:
		return true
	case mail.ErrSMTPMailFrom:
		return se.ErrorCode() == 0
	}
	return false
}

func (w *smtpWorker) connect(ctx context.Context) error {
	sc, err := w.client.DialToSMTPClientWithContext(ctx)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.disconnectLocked(false)
		return err
	}
	w.sc = sc
	w.connected = true
	return nil
}

// disconnectLocked ends the session: with QUIT when polite and the
// session is healthy, then by closing the TCP connection.
func (w *smtpWorker) disconnectLocked(polite bool) {
	if polite && w.connected && w.raw != nil {
		_ = w.raw.SetDeadline(time.Now().Add(min(w.s.timeout, time.Second)))
		_ = w.client.CloseWithSMTPClient(w.sc)
	}
	if w.raw != nil {
		_ = w.raw.Close()
		w.raw = nil
	}
	w.connected = false
	w.sc = nil
}

// peerClosed reports whether the server closed the kept connection or
// sent something unasked while it was idle.
func (w *smtpWorker) peerClosed() bool {
	if w.sc.Text.R.Buffered() > 0 {
		return true
	}
	w.mu.Lock()
	raw := w.raw
	w.mu.Unlock()
	return raw != nil && peerClosedConn(raw)
}

func (w *smtpWorker) abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.raw != nil {
		_ = w.raw.Close()
	}
}

func (w *smtpWorker) closeIdle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.busy || w.closed {
		return
	}
	w.disconnectLocked(true)
}

// Close ends the session politely; the queue calls it when it stops.
func (w *smtpWorker) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	if w.idleTimer != nil {
		w.idleTimer.Stop()
	}
	w.disconnectLocked(true)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner = (*SMTP)(nil)
	_ caddy.Validator   = (*SMTP)(nil)
	_ WorkerTransport   = (*SMTP)(nil)

	_ delivery.BatchWorker[*Message] = (*smtpWorker)(nil)
)
