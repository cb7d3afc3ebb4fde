package examples

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Text is a text message with a one-time code, as a test reads it.
type Text struct {
	// To is the destination number in E.164 form.
	To string
	// Body is the text that was sent.
	Body string
	// Code is the one-time code found in the body; empty for a text
	// without one, such as a security notice.
	Code string
}

// textCode is a code in a text: 4 to 10 digits on their own.
var textCode = regexp.MustCompile(`\b([0-9]{4,10})\b`)

// ParseText decodes a .txt file of the sms outbox provider (a To line, a
// Date line, a blank line, then the body) and finds its code, if any.
func ParseText(raw []byte) (Text, error) {
	head, body, ok := strings.Cut(string(raw), "\n\n")
	if !ok {
		return Text{}, errors.New("no blank line after the header")
	}
	var t Text
	for line := range strings.SplitSeq(head, "\n") {
		if to, ok := strings.CutPrefix(line, "To: "); ok {
			t.To = to
		}
	}
	if t.To == "" {
		return t, errors.New("no To line")
	}
	t.Body = strings.TrimSuffix(body, "\n")
	if match := textCode.FindStringSubmatch(t.Body); match != nil {
		t.Code = match[1]
	}
	return t, nil
}

// TextOutbox lists the texts in dir, oldest first (the outbox provider
// names them by time). Files being written, whose names start with a dot,
// are left out.
func TextOutbox(dir string) ([]string, error) {
	names, err := filepath.Glob(filepath.Join(dir, "*.txt"))
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

// WaitText waits until dir holds at least n texts and returns the newest
// one, decoded.
func WaitText(t TB, dir string, n int) Text {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		names, err := TextOutbox(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(names) >= n {
			raw, err := os.ReadFile(names[len(names)-1])
			if err != nil {
				t.Fatal(err)
			}
			text, err := ParseText(raw)
			if err != nil {
				t.Fatalf("%s: %v", names[len(names)-1], err)
			}
			return text
		}
		if time.Now().After(deadline) {
			t.Fatalf("sms outbox %s: %d texts after 15s, want %d", dir, len(names), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
