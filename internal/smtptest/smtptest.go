package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options configure a Server.
type Options struct {
	// Username and Password, when Username is set, make AUTH PLAIN
	// mandatory before MAIL FROM. AUTH is offered only over TLS (after
	// STARTTLS or on the implicit-TLS listener).
	Username string
	Password string
	// NoSTARTTLS stops the plain listener from offering STARTTLS.
	NoSTARTTLS bool
}

// Message is one message the server accepted.
type Message struct {
	// From is the MAIL FROM address.
	From string
	// To are the RCPT TO addresses.
	To []string
	// Data is the message as received after DATA, dot-unstuffed.
	Data []byte
	// TLS reports whether the connection was encrypted.
	TLS bool
	// User is the authenticated user name, if any.
	User string
}

// Stage is the SMTP command at which Reject makes a transaction fail.
type Stage int

// Stages for Reject.
const (
	StageMail Stage = iota
	StageRcpt
	StageData
)

// Server is a running SMTP server; NewServer stops it when the test ends.
type Server struct {
	// Host is "127.0.0.1".
	Host string
	// Port is the plain listener (STARTTLS offered unless NoSTARTTLS).
	Port int
	// TLSPort is the implicit-TLS listener.
	TLSPort int
	// Addr and TLSAddr are Host:Port and Host:TLSPort.
	Addr    string
	TLSAddr string
	// CAFile is a PEM file holding the server's self-signed certificate,
	// to trust it as a root.
	CAFile string
	// CertPool trusts the server's certificate.
	CertPool *x509.CertPool

	opts      Options
	server    *smtp.Server
	listeners []net.Listener

	mu       sync.Mutex
	messages []Message
	conns    int
	auths    int
	rejects  [3]reject
	rcptRej  map[string]reject
	live     map[*trackedConn]struct{}
	holds    [3]int
	held     int
	release  chan struct{}
	closed   bool
	notify   chan struct{}

	serving sync.WaitGroup // Serve loops
	open    sync.WaitGroup // accepted connections
}

type reject struct {
	code int
	n    int // remaining; negative means forever
}

// NewServer starts a server on two loopback ports and stops it with
// t.Cleanup.
func NewServer(t testing.TB, opts Options) *Server {
	t.Helper()
	certPEM, cert, err := selfSigned()
	if err != nil {
		t.Fatalf("smtptest: creating certificate: %v", err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatalf("smtptest: writing CA file: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)

	s := &Server{Host: "127.0.0.1", CAFile: caFile, CertPool: pool, opts: opts, notify: make(chan struct{}), release: make(chan struct{}),
		live: make(map[*trackedConn]struct{})}
	tlsConfig := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}

	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "localhost"
	srv.ReadTimeout = 30 * time.Second
	srv.WriteTimeout = 30 * time.Second
	srv.MaxRecipients = 50
	srv.AllowInsecureAuth = false
	srv.ErrorLog = log.New(io.Discard, "", 0)
	if !opts.NoSTARTTLS {
		srv.TLSConfig = tlsConfig
	}
	s.server = srv

	plain, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listening: %v", err)
	}
	implicitTCP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		plain.Close()
		t.Fatalf("smtptest: listening: %v", err)
	}
	s.Port = plain.Addr().(*net.TCPAddr).Port
	s.TLSPort = implicitTCP.Addr().(*net.TCPAddr).Port
	// The TLS listener wraps the counting one, so sessions see *tls.Conn.
	implicit := tls.NewListener(&countingListener{Listener: implicitTCP, s: s}, tlsConfig)
	s.listeners = []net.Listener{plain, implicitTCP}
	s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	s.TLSAddr = net.JoinHostPort(s.Host, strconv.Itoa(s.TLSPort))

	for _, l := range []net.Listener{&countingListener{Listener: plain, s: s}, implicit} {
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			_ = srv.Serve(l)
		}()
	}
	t.Cleanup(s.Close)
	return s
}

// Close stops the server and waits until every connection is closed. It
// is called by the test cleanup; calling it earlier is allowed.
func (s *Server) Close() {
	// Close the connections first, then let held sessions go on: their
	// replies then have nowhere to go.
	err := s.server.Close()
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.release)
	}
	s.mu.Unlock()
	if errors.Is(err, smtp.ErrServerClosed) {
		return
	}
	// A Serve loop that had not registered its listener yet is not
	// stopped by server.Close.
	for _, l := range s.listeners {
		l.Close()
	}
	s.serving.Wait()
	s.open.Wait()
}

// Messages returns the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// WaitMessages waits until at least n messages were accepted or timeout
// passed, and returns the messages.
func (s *Server) WaitMessages(n int, timeout time.Duration) []Message {
	s.waitUntil(func() bool { return len(s.messages) >= n }, timeout)
	return s.Messages()
}

// waitUntil waits until ok, called with s.mu held, is true or timeout
// passed, and reports whether it is.
func (s *Server) waitUntil(ok func() bool, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if ok() {
			s.mu.Unlock()
			return true
		}
		notify := s.notify
		s.mu.Unlock()
		select {
		case <-notify:
		case <-deadline.C:
			return false
		}
	}
}

// Connections returns how many TCP connections the server accepted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// Auths returns how many successful AUTH exchanges took place.
func (s *Server) Auths() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.auths
}

// Reject makes the next n transactions fail at stage with the SMTP reply
// code (4xx: transient, 5xx: permanent). A negative n rejects until Reject
// is called again; n = 0 turns the rejection off.
func (s *Server) Reject(stage Stage, code, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejects[stage] = reject{code: code, n: n}
}

// RejectRecipient makes the next n RCPT TO commands for the address to
// fail with the SMTP reply code, before the rejections of Reject. A
// negative n rejects until RejectRecipient is called again for to; n = 0
// turns the rejection off.
func (s *Server) RejectRecipient(to string, code, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rcptRej == nil {
		s.rcptRej = make(map[string]reject)
	}
	s.rcptRej[to] = reject{code: code, n: n}
}

// Hold makes the next n transactions stop answering at stage (the server
// reads the command and never replies) until Release or Close. A negative
// n holds every transaction.
func (s *Server) Hold(stage Stage, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holds[stage] = n
}

// Release lets the held transactions go on and stops holding new ones.
func (s *Server) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.holds = [3]int{}
	if !s.closed {
		close(s.release)
		s.release = make(chan struct{})
	}
}

// holdAt blocks while stage is held.
func (s *Server) holdAt(stage Stage) {
	s.mu.Lock()
	if s.holds[stage] == 0 || s.closed {
		s.mu.Unlock()
		return
	}
	if s.holds[stage] > 0 {
		s.holds[stage]--
	}
	release := s.release
	s.held++
	s.changed()
	s.mu.Unlock()
	<-release
	s.mu.Lock()
	s.held--
	s.mu.Unlock()
}

// WaitHeld waits until at least n transactions are held (Hold) or timeout
// passed, and reports whether they are.
func (s *Server) WaitHeld(n int, timeout time.Duration) bool {
	return s.waitUntil(func() bool { return s.held >= n }, timeout)
}

// changed wakes the waiters of WaitMessages and WaitHeld. s.mu is held.
func (s *Server) changed() {
	close(s.notify)
	s.notify = make(chan struct{})
}

// rejectAt returns the error for stage, consuming one rejection.
func (s *Server) rejectAt(stage Stage) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rejects[stage].take()
}

// rejectRcpt returns the error for RCPT TO:<to>, consuming one rejection
// of RejectRecipient or else of Reject.
func (s *Server) rejectRcpt(to string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.rcptRej[to]; ok && r.n != 0 {
		err := r.take()
		s.rcptRej[to] = r
		return err
	}
	return s.rejects[StageRcpt].take()
}

// take returns r's error, consuming one rejection; nil when none is left.
func (r *reject) take() error {
	if r.n == 0 {
		return nil
	}
	if r.n > 0 {
		r.n--
	}
	class := r.code / 100
	return &smtp.SMTPError{
		Code:         r.code,
		EnhancedCode: smtp.EnhancedCode{class, 0, 0},
		Message:      fmt.Sprintf("smtptest rejects with %d", r.code),
	}
}

func (s *Server) newSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	return &session{s: s, conn: c, tls: isTLS}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	tls  bool
	user string
	from string
	to   []string
}

func (ss *session) AuthMechanisms() []string {
	if ss.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return smtp.ErrAuthFailed
		}
		if username != ss.s.opts.Username || password != ss.s.opts.Password {
			return smtp.ErrAuthFailed
		}
		ss.user = username
		ss.s.mu.Lock()
		ss.s.auths++
		ss.s.mu.Unlock()
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opts.Username != "" && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	ss.s.holdAt(StageMail)
	if err := ss.s.rejectAt(StageMail); err != nil {
		return err
	}
	ss.from = from
	ss.to = nil
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.holdAt(StageRcpt)
	if err := ss.s.rejectRcpt(to); err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.s.holdAt(StageData)
	if err := ss.s.rejectAt(StageData); err != nil {
		return err
	}
	msg := Message{From: ss.from, To: append([]string(nil), ss.to...), Data: data, TLS: ss.tls, User: ss.user}
	if !msg.TLS {
		_, msg.TLS = ss.conn.TLSConnectionState()
	}
	ss.s.mu.Lock()
	ss.s.messages = append(ss.s.messages, msg)
	ss.s.changed()
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset() {
	ss.from = ""
	ss.to = nil
}

func (ss *session) Logout() error { return nil }

// countingListener counts accepted connections and tracks them until they
// are closed, so Close can wait for every connection goroutine.
type countingListener struct {
	net.Listener
	s *Server
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, s: l.s}
	l.s.mu.Lock()
	l.s.conns++
	l.s.live[tc] = struct{}{}
	l.s.mu.Unlock()
	l.s.open.Add(1)
	return tc, nil
}

type trackedConn struct {
	net.Conn
	s    *Server
	once sync.Once
}

func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.s.mu.Lock()
		delete(c.s.live, c)
		c.s.mu.Unlock()
		c.s.open.Done()
	})
	return err
}

// DropConnections closes every open connection without a reply, as a
// server does when it restarts or times out idle clients.
func (s *Server) DropConnections() {
	s.mu.Lock()
	conns := make([]*trackedConn, 0, len(s.live))
	for c := range s.live {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Conn.Close()
	}
}

// Hang starts a listener that accepts connections and never answers, and
// returns its address. Clients must give up through their own timeout.
func Hang(t testing.TB) string {
	t.Helper()
	return Listen(t, nil)
}

// Listen starts a listener on loopback and returns its address. Each
// connection it accepts goes to serve on a goroutine of its own (nil
// serve: the connection is held open, unanswered). When the test ends
// the listener and every connection are closed, and serve has returned.
func Listen(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listening: %v", err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			if serve != nil {
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer c.Close()
					serve(c)
				}()
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return l.Addr().String()
}

// ClosedAddr returns a loopback address where nothing listens: connecting
// to it is refused.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listening: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// selfSigned returns a self-signed ECDSA certificate for 127.0.0.1, ::1
// and localhost, valid for a day, as PEM and as a tls.Certificate.
func selfSigned() ([]byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	return bytes.Clone(certPEM), cert, nil
}
