package examples

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
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
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		return Message{}, fmt.Errorf("parsing message: %w", err)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Message{}, fmt.Errorf("decoding subject: %w", err)
	}
	text, err := plainText(msg.Header.Get, msg.Body)
	if err != nil {
		return Message{}, err
	}
	m := Message{To: msg.Header.Get("To"), Subject: subject, Text: text}
	match := codeLine.FindStringSubmatch(text)
	if match == nil {
		return m, errors.New("no code in the message text")
	}
	m.Code = match[1]
	return m, nil
}

// plainText returns the first text/plain part of a body, decoded.
func plainText(header func(string) string, body io.Reader) (string, error) {
	mt, params, err := mime.ParseMediaType(header("Content-Type"))
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return "", errors.New("no text/plain part")
			}
			if err != nil {
				return "", fmt.Errorf("reading multipart body: %w", err)
			}
			if text, err := plainText(p.Header.Get, p); err == nil {
				return text, nil
			}
		}
	}
	if mt != "text/plain" {
		return "", fmt.Errorf("part is %s", mt)
	}
	switch strings.ToLower(header("Content-Transfer-Encoding")) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		return "", errors.New("base64 text part: not expected from the built-in templates")
	}
	b, err := io.ReadAll(body)
	return string(b), err
}

// Outbox lists the .eml files in dir, oldest first (the outbox transport
// names them by time).
func Outbox(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	return names, nil
}

// WaitOutbox waits until dir holds at least n messages and returns the
// newest one, decoded. Delivery is asynchronous in standalone mode, so a
// message may appear just after the answer that sent it.
func WaitOutbox(t testing.TB, dir string, n int) Message {
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
