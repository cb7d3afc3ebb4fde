// Package twiliotest runs a local HTTP server that implements the parts
// of Twilio's Messages API that the twilio SMS provider calls, for tests
// that send texts: POST /2010-04-01/Accounts/{AccountSid}/Messages.json
// with HTTP basic authentication and the form fields To, Body and From or
// MessagingServiceSid, answered with 201 and a Message resource, or with
// Twilio's JSON error object ({"code", "message", "more_info", "status"})
// for an unknown path (404, 20404), wrong credentials (401, 20003), an
// invalid To (400, 21211), a missing Body (400, 21602) or a missing sender
// (400, 21603).
//
// It can be told to answer the next requests with an error of its choice
// (Fail), with any status and body (Answer), or not at all until the
// client gives up (Hang). It records every accepted message and counts
// every request, so tests can show that a text was sent exactly once, or
// never.
package twiliotest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// Credentials the server accepts.
const (
	AccountSID = "AC0123456789abcdef0123456789abcdef"
	AuthToken  = "twiliotest-auth-token-5f3e9a"
	// ServiceSID is a Messaging Service SID the server accepts.
	ServiceSID = "MG0123456789abcdef0123456789abcdef"
)

// Message is a text the server accepted.
type Message struct {
	SID                 string
	To                  string
	From                string
	MessagingServiceSid string
	Body                string
}

// Server is a running fake of Twilio's Messages API.
type Server struct {
	// URL is the base URL to configure as the provider's api_url.
	URL string

	srv     *httptest.Server
	closing chan struct{}
	once    sync.Once

	mu       sync.Mutex
	messages []Message
	requests int
	script   []answer
}

// answer is a scripted answer to one request.
type answer struct {
	status  int
	body    string
	hang    bool
	forever bool // answer every request from now on
}

// NewServer starts a server on 127.0.0.1 and stops it when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{closing: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(s.Close)
	return s
}

// Close releases hanging requests and stops the server.
func (s *Server) Close() {
	s.once.Do(func() { close(s.closing) })
	s.srv.Close()
}

// Messages returns the accepted messages, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Requests returns the number of requests that reached the server,
// whatever their answer.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Fail makes the next n authenticated requests (every one when n is
// negative) fail with Twilio's error object: HTTP status, Twilio error
// code and message.
func (s *Server) Fail(status, code int, message string, n int) {
	body, _ := json.Marshal(map[string]any{
		"code":      code,
		"message":   message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		"status":    status,
	})
	s.push(answer{status: status, body: string(body)}, n)
}

// Answer makes the next n authenticated requests (every one when n is
// negative) get status and body as they are.
func (s *Server) Answer(status int, body string, n int) {
	s.push(answer{status: status, body: body}, n)
}

// Hang makes the next n authenticated requests (every one when n is
// negative) get no answer until the client gives up or the server closes.
func (s *Server) Hang(n int) {
	s.push(answer{hang: true}, n)
}

func (s *Server) push(a answer, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 0 {
		a.forever = true
		s.script = append(s.script, a)
		return
	}
	for range n {
		s.script = append(s.script, a)
	}
}

// next pops the next scripted answer, if any.
func (s *Server) next() (answer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.script) == 0 {
		return answer{}, false
	}
	a := s.script[0]
	if !a.forever {
		s.script = s.script[1:]
	}
	return a, true
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()

	want := "/2010-04-01/Accounts/" + AccountSID + "/Messages.json"
	if r.Method != http.MethodPost || r.URL.Path != want {
		writeError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
		return
	}
	user, pass, ok := r.BasicAuth()
	if !ok || user != AccountSID || pass != AuthToken {
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}

	if a, ok := s.next(); ok {
		if a.hang {
			select {
			case <-r.Context().Done():
			case <-s.closing:
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		_, _ = w.Write([]byte(a.body))
		return
	}

	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		writeError(w, http.StatusBadRequest, 20001, "Content-Type must be application/x-www-form-urlencoded")
		return
	}
	if err := r.ParseForm(); err != nil || len(r.URL.RawQuery) > 0 {
		writeError(w, http.StatusBadRequest, 20001, "Bad request")
		return
	}
	m := Message{
		To:                  r.PostForm.Get("To"),
		From:                r.PostForm.Get("From"),
		MessagingServiceSid: r.PostForm.Get("MessagingServiceSid"),
		Body:                r.PostForm.Get("Body"),
	}
	for _, field := range []string{"To", "From", "MessagingServiceSid", "Body"} {
		if len(r.PostForm[field]) > 1 {
			writeError(w, http.StatusBadRequest, 20001, field+" given more than once")
			return
		}
	}
	switch {
	case !isE164(m.To):
		writeError(w, http.StatusBadRequest, 21211, fmt.Sprintf("Invalid 'To' Phone Number: %s", m.To))
		return
	case m.Body == "":
		writeError(w, http.StatusBadRequest, 21602, "Message body is required.")
		return
	case len([]rune(m.Body)) > 1600:
		writeError(w, http.StatusBadRequest, 21617, "The concatenated message body exceeds the 1600 character limit.")
		return
	case m.From == "" && m.MessagingServiceSid == "":
		writeError(w, http.StatusBadRequest, 21603, "A 'From' or 'MessagingServiceSid' parameter is required to send a message.")
		return
	case m.MessagingServiceSid != "" && m.MessagingServiceSid != ServiceSID:
		writeError(w, http.StatusNotFound, 20404, "The requested resource was not found")
		return
	}

	var id [16]byte
	_, _ = rand.Read(id[:])
	m.SID = "SM" + hex.EncodeToString(id[:])
	s.mu.Lock()
	s.messages = append(s.messages, m)
	s.mu.Unlock()

	status := "queued"
	if m.MessagingServiceSid != "" {
		status = "accepted"
	}
	now := time.Now().UTC().Format(time.RFC1123Z)
	body, _ := json.Marshal(map[string]any{
		"account_sid":           AccountSID,
		"api_version":           "2010-04-01",
		"body":                  m.Body,
		"date_created":          now,
		"date_updated":          now,
		"date_sent":             nil,
		"direction":             "outbound-api",
		"error_code":            nil,
		"error_message":         nil,
		"from":                  nilIfEmpty(m.From),
		"messaging_service_sid": nilIfEmpty(m.MessagingServiceSid),
		"num_media":             "0",
		"num_segments":          "1",
		"price":                 nil,
		"price_unit":            "USD",
		"sid":                   m.SID,
		"status":                status,
		"to":                    m.To,
		"uri":                   "/2010-04-01/Accounts/" + AccountSID + "/Messages/" + m.SID + ".json",
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
}

// writeError answers with Twilio's error object.
func writeError(w http.ResponseWriter, status, code int, message string) {
	body, _ := json.Marshal(map[string]any{
		"code":      code,
		"message":   message,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code),
		"status":    status,
	})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// isE164 reports whether s is '+' and 2 to 15 digits, the first not 0.
func isE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	return strings.Trim(s[1:], "0123456789") == ""
}
