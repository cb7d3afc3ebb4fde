package smtptest

import (
	"crypto/tls"
	"net"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

func TestServerRecordsMessage(t *testing.T) {
	s := NewServer(t, Options{Username: "u", Password: "p"})
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		t.Error("AUTH offered before STARTTLS")
	}
	if err := c.StartTLS(&tls.Config{RootCAs: s.CertPool, ServerName: s.Host}); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.com"); err == nil {
		t.Fatal("MAIL accepted before AUTH")
	}
	if err := c.Auth(smtp.PlainAuth("", "u", "p", s.Host)); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.com"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("Subject: hi\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	msgs := s.WaitMessages(1, 5*time.Second)
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	m := msgs[0]
	if m.From != "a@example.com" || len(m.To) != 1 || m.To[0] != "b@example.com" || !m.TLS || m.User != "u" {
		t.Errorf("message = %+v", m)
	}
	if !strings.Contains(string(m.Data), "body") {
		t.Errorf("data = %q", m.Data)
	}
	if s.Connections() != 1 || s.Auths() != 1 {
		t.Errorf("connections = %d, auths = %d", s.Connections(), s.Auths())
	}
}

func TestServerImplicitTLSAndReject(t *testing.T) {
	s := NewServer(t, Options{})
	conn, err := tls.Dial("tcp", s.TLSAddr, &tls.Config{RootCAs: s.CertPool, ServerName: s.Host})
	if err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(conn, s.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s.Reject(StageRcpt, 451, 1)
	if err := c.Mail("a@example.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.com"); err == nil || !strings.HasPrefix(err.Error(), "451") {
		t.Fatalf("Rcpt() = %v, want 451", err)
	}
	if err := c.Rcpt("b@example.com"); err != nil {
		t.Fatalf("second Rcpt() = %v", err)
	}
}

func TestHangAndClosedAddr(t *testing.T) {
	addr := Hang(t)
	c, err := (&netDialer).Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("hanging server answered")
	}
	if _, err := netDialer.Dial("tcp", ClosedAddr(t)); err == nil {
		t.Error("closed address accepted a connection")
	}
}

var netDialer net.Dialer

func TestServerHold(t *testing.T) {
	s := NewServer(t, Options{NoSTARTTLS: true})
	s.Hold(StageRcpt, 1)
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("a@example.com"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Rcpt("b@example.com") }()
	select {
	case err := <-done:
		t.Fatalf("held RCPT answered: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	s.Release()
	if err := <-done; err != nil {
		t.Fatalf("released RCPT = %v", err)
	}
}

func TestServerCloseReleasesHeld(t *testing.T) {
	s := NewServer(t, Options{NoSTARTTLS: true})
	s.Hold(StageMail, -1)
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.Mail("a@example.com") }()
	s.Close() // must not wait forever for the held session
	if err := <-done; err == nil {
		t.Error("MAIL succeeded on a closed server")
	}
}

func TestServerRejectRecipient(t *testing.T) {
	s := NewServer(t, Options{NoSTARTTLS: true})
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s.RejectRecipient("b@example.com", 550, 1)
	s.RejectRecipient("c@example.com", 451, -1)
	if err := c.Mail("a@example.com"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ to, want string }{
		{"b@example.com", "550"},
		{"b@example.com", ""},
		{"c@example.com", "451"},
		{"c@example.com", "451"},
		{"d@example.com", ""},
	} {
		err := c.Rcpt(tc.to)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
			t.Errorf("Rcpt(%s) = %v, want %q", tc.to, err, tc.want)
		}
	}
}

func TestServerWaitHeld(t *testing.T) {
	s := NewServer(t, Options{NoSTARTTLS: true})
	if s.WaitHeld(1, time.Millisecond) {
		t.Fatal("WaitHeld() = true with nothing held")
	}
	s.Hold(StageMail, 1)
	c, err := smtp.Dial(s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	done := make(chan error, 1)
	go func() { done <- c.Mail("a@example.com") }()
	if !s.WaitHeld(1, 5*time.Second) {
		t.Fatal("MAIL not held")
	}
	select {
	case err := <-done:
		t.Fatalf("held MAIL answered: %v", err)
	default:
	}
	s.Release()
	if err := <-done; err != nil {
		t.Fatalf("released MAIL = %v", err)
	}
}
