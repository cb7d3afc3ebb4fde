package main

import (
	"bytes"
	"io"
	"log"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/caddymfa/caddy-mfa/internal/mailtest"
)

// mailServer is the SMTP server Caddy sends codes to. It reads the code
// out of each message and hands it to the sign-in waiting for that
// recipient: every user belongs to one client, which runs one sign-in at
// a time, so the recipient names the sign-in.
type mailServer struct {
	addr     string
	listener net.Listener
	server   *smtp.Server
	served   chan struct{}

	mu      sync.Mutex
	waiting map[string]chan string // recipient → the sign-in waiting for its code

	received  atomic.Int64
	unclaimed atomic.Int64 // messages nobody waited for, or without a code
}

// startMailServer listens on addr ("127.0.0.1:0" for any port).
func startMailServer(addr string) (*mailServer, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	m := &mailServer{addr: l.Addr().String(), listener: l, served: make(chan struct{}), waiting: make(map[string]chan string)}
	srv := smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &mailSession{m: m}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxRecipients = 10
	srv.ErrorLog = log.New(io.Discard, "", 0)
	m.server = srv
	go func() {
		defer close(m.served)
		_ = srv.Serve(l)
	}()
	return m, nil
}

// close stops the server and waits for its accept loop.
func (m *mailServer) close() {
	_ = m.server.Close()
	// A Serve that had not registered the listener yet is stopped by
	// closing it here.
	_ = m.listener.Close()
	<-m.served
}

// expect registers a sign-in waiting for a code to rcpt; the code arrives
// on the channel. Call it before the request that sends the code.
func (m *mailServer) expect(rcpt string) <-chan string {
	ch := make(chan string, 1)
	m.mu.Lock()
	m.waiting[strings.ToLower(rcpt)] = ch
	m.mu.Unlock()
	return ch
}

// forget drops the registration of rcpt, after its code arrived or the
// sign-in gave up.
func (m *mailServer) forget(rcpt string) {
	m.mu.Lock()
	delete(m.waiting, strings.ToLower(rcpt))
	m.mu.Unlock()
}

// deliver hands code to whoever waits for rcpt.
func (m *mailServer) deliver(rcpt, code string) {
	m.mu.Lock()
	ch, ok := m.waiting[strings.ToLower(rcpt)]
	if ok {
		delete(m.waiting, strings.ToLower(rcpt))
	}
	m.mu.Unlock()
	if !ok {
		m.unclaimed.Add(1)
		return
	}
	ch <- code
}

type mailSession struct {
	m  *mailServer
	to []string
}

func (s *mailSession) Mail(string, *smtp.MailOptions) error { return nil }

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

// codeLine is the line of the built-in text template that holds the code:
// the code alone, indented.
var codeLine = regexp.MustCompile(`(?m)^[ \t]+([0-9]{4,10})[ \t]*\r?$`)

// dataPool holds the buffers messages are read into.
var dataPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (s *mailSession) Data(r io.Reader) error {
	buf := dataPool.Get().(*bytes.Buffer)
	defer dataPool.Put(buf)
	buf.Reset()
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	s.m.received.Add(1)
	code := codeIn(buf.Bytes())
	for _, to := range s.to {
		if code == "" {
			s.m.unclaimed.Add(1)
			continue
		}
		s.m.deliver(to, code)
	}
	return nil
}

// codeIn finds the code in a raw message. The text part is quoted-printable,
// which leaves a line of spaces and digits as it is, so the code line is
// found in the raw bytes without parsing the MIME structure; a message
// where it is not (another encoding) is parsed.
func codeIn(raw []byte) string {
	for line := range bytes.Lines(raw) {
		if code := codeOfLine(line); code != "" {
			return code
		}
	}
	if msg, err := mailtest.Parse(raw); err == nil {
		if sub := codeLine.FindStringSubmatch(msg.Text); sub != nil {
			return sub[1]
		}
	}
	return ""
}

// codeOfLine is the code of a line that holds nothing else but indentation
// (what codeLine matches), or "".
func codeOfLine(line []byte) string {
	line = bytes.TrimRight(line, "\r\n")
	rest := bytes.TrimLeft(line, " \t")
	if len(rest) == len(line) {
		return "" // not indented
	}
	rest = bytes.TrimRight(rest, " \t")
	if len(rest) < 4 || len(rest) > 10 {
		return ""
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return ""
		}
	}
	return string(rest)
}

func (s *mailSession) Reset()        { s.to = nil }
func (s *mailSession) Logout() error { return nil }
