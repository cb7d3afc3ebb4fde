package examples

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/mailtest"
)

// Message is an email with a one-time code, as a test reads it.
type Message struct {
	// To is the To header.
	To string
	// Subject is the decoded subject.
	Subject string
	// Text is the decoded text/plain body.
	Text string
	// Code is the one-time code found in the text.
	Code string
}

// codeLine is the line of the built-in text template that holds the code.
var codeLine = regexp.MustCompile(`(?m)^\s*([0-9]{4,10})\s*$`)

// ParseMessage decodes an RFC 5322 message (an .eml file of the outbox
// transport, or what an SMTP server received) and finds its code.
func ParseMessage(raw []byte) (Message, error) {
	d, err := mailtest.Parse(raw)
	if err != nil {
		return Message{}, err
	}
	m := Message{To: d.Header.Get("To"), Subject: d.Subject, Text: d.Text}
	match := codeLine.FindStringSubmatch(d.Text)
	if match == nil {
		return m, errors.New("no code in the message text")
	}
	m.Code = match[1]
	return m, nil
}

// Outbox lists the .eml files in dir, oldest first (the outbox transport
// names them by time). Files being written, whose names start with a dot,
// are left out.
func Outbox(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, n := range names {
		if !strings.HasPrefix(filepath.Base(n), ".") {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// TB is what the wait helpers need of a test (testing.TB has it), so
// this package imports testing only in its tests.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// WaitOutbox waits until dir holds at least n messages and returns the
// newest one, decoded. Delivery is asynchronous in standalone mode, so a
// message may appear just after the answer that sent it.
func WaitOutbox(t TB, dir string, n int) Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		names, err := Outbox(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(names) >= n {
			raw, err := os.ReadFile(names[len(names)-1])
			if err != nil {
				t.Fatal(err)
			}
			m, err := ParseMessage(raw)
			if err != nil {
				t.Fatalf("%s: %v", names[len(names)-1], err)
			}
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox %s: %d messages after 15s, want %d", dir, len(names), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
