package caddymfa

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"testing"

	"github.com/caddymfa/caddy-mfa/authenticators"
)

// answerWatch is a sender that notes, when a message is handed to it,
// what the client has of the answer so far.
type answerWatch struct {
	authenticators.Sender
	e         *env
	delivered int
	// flushed, status, length and body: the answer as the client had it
	// when the message was handed over.
	flushed bool
	status  int
	length  string
	body    []byte
}

func (a *answerWatch) Deliver(ctx context.Context, m authenticators.Message) error {
	a.e.mu.Lock()
	rec := a.e.answering
	a.e.mu.Unlock()
	a.delivered++
	a.flushed, a.status = rec.Flushed, rec.Code
	a.length = rec.Header().Get("Content-Length")
	a.body = append([]byte(nil), rec.Body.Bytes()...)
	return a.Sender.Deliver(ctx, m)
}

// watchEmail puts an answerWatch in front of the email channel.
func watchEmail(t *testing.T, e *env) *answerWatch {
	t.Helper()
	watch := &answerWatch{e: e}
	for i, ch := range e.h.methods.list {
		if ch.method == methodEmail {
			watch.Sender = ch.sender
			ch.sender = watch
			e.h.methods.values[i].sender = watch
		}
	}
	if watch.Sender == nil {
		t.Fatal("no email channel")
	}
	return watch
}

// SECURITY.md H37: a standalone code is handed to its queue once the
// whole answer, with its length, is out, and the answers to every name
// are written the same way. (That it is handed over at once, not after a
// fixed delay, shows in bench/signin's "mail" step: see BENCHMARKS.md.)
func TestStandaloneCodeQueuedOnceTheAnswerIsOut(t *testing.T) {
	h, outbox := testConfig(t)
	h.User = new(string)
	e := newEnv(t, h, outbox)
	watch := watchEmail(t, e)
	for i, html := range []bool{false, true} {
		b := e.browser("")
		csrf := b.state()["csrf_token"].(string)
		rq := request{target: "/.mfa/identify", json: map[string]string{"username": "alice", "csrf_token": csrf}}
		if html {
			rq = request{target: "/.mfa/identify", form: url.Values{"username": {"alice"}, "csrf_token": {csrf}}}
		}
		resp := b.do(rq)
		e.h.pending.Wait()
		if watch.delivered != i+1 {
			t.Fatalf("html=%v: %d messages handed over, want %d", html, watch.delivered, i+1)
		}
		if !watch.flushed {
			t.Fatalf("html=%v: the message was handed over before the answer was flushed", html)
		}
		if watch.length != strconv.Itoa(len(watch.body)) {
			t.Fatalf("html=%v: Content-Length %q for a %d-byte answer: the client could not know it had all of it", html, watch.length, len(watch.body))
		}
		if watch.status != resp.StatusCode {
			t.Fatalf("html=%v: status %d when handed over, %d in the end", html, watch.status, resp.StatusCode)
		}
		if html {
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("form identify: %d, want 303", resp.StatusCode)
			}
			continue
		}
		var st map[string]any
		if err := json.Unmarshal(watch.body, &st); err != nil || st["step"] != stepVerify {
			t.Fatalf("answer when handed over: %s (%v)", watch.body, err)
		}
	}
	// A name without an address gets the same answer, written the same
	// way, and nothing to send.
	b := e.browser("")
	csrf := b.state()["csrf_token"].(string)
	resp := b.do(request{target: "/.mfa/identify", json: map[string]string{"username": "nobody", "csrf_token": csrf}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Length") == "" || !e.answering.Flushed {
		t.Fatalf("unknown name: %d, Content-Length %q, flushed %v", resp.StatusCode, resp.Header.Get("Content-Length"), e.answering.Flushed)
	}
	e.h.pending.Wait()
	if watch.delivered != 2 {
		t.Fatalf("%d messages handed over, want 2", watch.delivered)
	}
	waitOutbox(t, e, 2)
}
