package caddymfa

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSecondFactorLoginWithEmailCode(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")

	// A browser navigation is redirected to the sign-in page.
	resp := b.do(request{target: "/app?x=1", header: http.Header{"Accept": {"text/html"}}})
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("navigation: status %d, want 302", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if loc != "/.mfa/?return="+url.QueryEscape("/app?x=1") {
		t.Fatalf("Location = %q", loc)
	}
	// The page offers email, masked.
	resp = b.do(request{target: loc, header: http.Header{"Accept": {"application/json"}}})
	st := decodeJSON(t, resp)
	if st["step"] != "choose" || st["destination"] != "a***@e***.com" {
		t.Fatalf("step: %v", st)
	}
	// GET never sends.
	if n := len(e.outboxMessages()); n != 0 {
		t.Fatalf("GET sent %d messages", n)
	}
	resp = b.postJSON("/send", map[string]string{"method": "email"})
	st = decodeJSON(t, resp)
	if resp.StatusCode != 200 || st["step"] != "verify" || st["attempts_left"] != 3.0 || st["expires_in"] != 600.0 {
		t.Fatalf("send: %d %v", resp.StatusCode, st)
	}
	msgs := e.outboxMessages()
	if len(msgs) != 1 || !strings.Contains(msgs[0], "alice@example.com") {
		t.Fatalf("outbox: %d messages", len(msgs))
	}
	resp = b.postJSON("/verify", map[string]string{"method": "email", "code": e.lastCode()})
	st = decodeJSON(t, resp)
	if resp.StatusCode != 200 || st["redirect"] != "/app?x=1" {
		t.Fatalf("verify: %d %v", resp.StatusCode, st)
	}
	resp = b.do(request{target: "/app?x=1"})
	if resp.StatusCode != 200 {
		t.Fatalf("protected request after sign-in: %d", resp.StatusCode)
	}
	vals := e.replVals[len(e.replVals)-1]
	if vals["mfa.user"] != "alice" || vals["mfa.method"] != "email" {
		t.Fatalf("placeholders: %v", vals)
	}
}

func TestHTMLFormFlowRedirects(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	resp := b.do(request{target: "/.mfa/?return=/docs", header: http.Header{"Accept": {"text/html"}}})
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "a***@e***.com") {
		t.Fatalf("choose page: %d %s", resp.StatusCode, body)
	}
	csrf := b.state()["csrf_token"].(string)
	resp = b.do(request{target: "/.mfa/send", form: url.Values{"method": {"email"}, "csrf_token": {csrf}}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/" {
		t.Fatalf("send: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = b.do(request{target: "/.mfa/verify", form: url.Values{"method": {"email"}, "code": {e.lastCode()}, "csrf_token": {csrf}}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/docs" {
		t.Fatalf("verify: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestNonBrowserRequestsGet401JSON(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	for _, rq := range []request{
		{target: "/api", header: http.Header{"Accept": {"application/json"}}},
		{method: http.MethodPost, target: "/app", header: http.Header{"Accept": {"text/html"}}},
		{target: "/app"},
	} {
		rq.user = "alice"
		resp := e.serve(rq, nil)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %s: %d %s", rq.method, rq.target, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

// SECURITY.md A1: 1,000 concurrent wrong codes against one challenge.
func TestConcurrentWrongCodesCompareAtMostMaxAttempts(t *testing.T) {
	h, outbox := testConfig(t)
	h.Lockout = &Lockout{Failures: 100}
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	b.postJSON("/send", map[string]string{"method": "email"})
	code := e.lastCode()
	csrf := b.state()["csrf_token"].(string)
	wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)

	var wg sync.WaitGroup
	bodies := make(chan string, 1000)
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := b.do(request{method: http.MethodPost, target: "/.mfa/verify", json: map[string]string{"code": wrong, "csrf_token": csrf}})
			st := decodeJSON(t, resp)
			bodies <- fmt.Sprintf("%d %v %v", resp.StatusCode, st["error"], st["message"] != nil)
		}()
	}
	wg.Wait()
	close(bodies)
	for body := range bodies {
		if body != "401 invalid_code true" {
			t.Fatalf("answer %q", body)
		}
	}
	ch := e.challengeOf(b)
	if ch.Attempts != 3 || ch.State != stateDead {
		t.Fatalf("challenge after 1000 guesses: attempts %d state %s; want 3 dead", ch.Attempts, ch.State)
	}
	// A2: the right code after the limit gives no session.
	resp := b.do(request{method: http.MethodPost, target: "/.mfa/verify", json: map[string]string{"code": code, "csrf_token": csrf}})
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Fatalf("right code after the limit: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
}

// SECURITY.md A2: the right code racing the failures that reach the limit.
func TestRightCodeRacingFailuresNeverExceedsLimit(t *testing.T) {
	for round := range 20 {
		h, outbox := testConfig(t)
		h.Lockout = &Lockout{Failures: 100}
		e := newEnv(t, h, outbox)
		b := e.browser("alice")
		b.postJSON("/send", map[string]string{"method": "email"})
		code := e.lastCode()
		csrf := b.state()["csrf_token"].(string)
		wrong := fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
		flowID := e.flowID(b)
		var wg sync.WaitGroup
		results := make([]int, 6)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := wrong
				if i == 5 {
					c = code
				}
				results[i] = b.do(request{method: http.MethodPost, target: "/.mfa/verify", json: map[string]string{"code": c, "csrf_token": csrf}}).StatusCode
			}()
		}
		wg.Wait()
		ch := e.challenge(flowID)
		if ch.Attempts > 3 {
			t.Fatalf("round %d: %d attempts counted", round, ch.Attempts)
		}
		// The right code wins only if it was among the first three counted.
		if results[5] == 200 && ch.State != stateUsed {
			t.Fatalf("round %d: success but challenge %s", round, ch.State)
		}
	}
}

// SECURITY.md A3: the same right code sent 50 times at once makes one
// session. A request that comes after the winner is a repeat of its
// success (K53): the same answer, without a session cookie.
func TestSameRightCodeFiftyTimesGivesOneSession(t *testing.T) {
	h, outbox := testConfig(t)
	// The losers that raced the winner count as failures; keep them below
	// the lockout, which would otherwise end the winner's session too.
	h.Lockout = &Lockout{Failures: 100}
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	b.postJSON("/send", map[string]string{"method": "email"})
	code := e.lastCode()
	csrf := b.state()["csrf_token"].(string)
	var wg sync.WaitGroup
	var mu sync.Mutex
	sessions := 0
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := b.do(request{method: http.MethodPost, target: "/.mfa/verify", json: map[string]string{"code": code, "csrf_token": csrf}})
			if slices.ContainsFunc(resp.Cookies(), func(c *http.Cookie) bool { return c.Name == e.h.realm.plain[cookieSession] && c.MaxAge >= 0 }) {
				mu.Lock()
				sessions++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if sessions != 1 {
		t.Fatalf("%d sessions from one code", sessions)
	}
	recs, err := e.h.store.List(t.Context(), keySession, 0, false)
	if err != nil || len(recs) != 1 {
		t.Fatalf("store holds %d sessions (%v)", len(recs), err)
	}
}

// SECURITY.md A4, A6 and K51: new flows do not bring fresh attempts;
// failures add up per user across spellings of the name (each spelling is
// its own first-factor user, listed with its own address, yet all count
// in one lockout), and once locked even the right code fails.
func TestRestartingFlowsAddUpToLockout(t *testing.T) {
	h, outbox := testConfig(t)
	h.Lockout = &Lockout{Failures: 6}
	spellings := []string{"alice", "Alice", " alice", "ALICE", "ａｌｉｃｅ", "Ａlice"}
	for i, name := range spellings[1:] {
		h.Users = append(h.Users, UserEntry{Name: name, Email: fmt.Sprintf("alice%d@example.com", i)})
	}
	e := newEnv(t, h, outbox)
	for i, name := range spellings {
		b := e.browser(name)
		b.ip = fmt.Sprintf("198.51.100.%d", i+1)
		b.postJSON("/send", map[string]string{"method": "email"})
		code := e.lastCode()
		resp := b.postJSON("/verify", map[string]string{"code": fmt.Sprintf("%06d", (atoi(code)+1)%1000000)})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code %d: status %d", i, resp.StatusCode)
		}
	}
	// The seventh flow: right code, but the user is locked.
	b := e.browser("alice")
	b.ip = "203.0.113.9"
	b.postJSON("/send", map[string]string{"method": "email"})
	resp := b.postJSON("/verify", map[string]string{"code": e.lastCode()})
	st := decodeJSON(t, resp)
	if resp.StatusCode != http.StatusUnauthorized || st["error"] != "invalid_code" {
		t.Fatalf("right code while locked: %d %v", resp.StatusCode, st)
	}
	// The lock expires with its window.
	e.clock.add(16 * time.Minute)
	b = e.browser("alice")
	b.postJSON("/send", map[string]string{"method": "email"})
	resp = b.postJSON("/verify", map[string]string{"code": e.lastCode()})
	if resp.StatusCode != 200 {
		t.Fatalf("after the lock window: %d", resp.StatusCode)
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

// challengeOf reads the browser's current challenge from the store.
func (e *env) challengeOf(b *browser) challenge {
	e.t.Helper()
	return e.challenge(e.flowID(b))
}

// flowID is the ID of the browser's flow.
func (e *env) flowID(b *browser) string {
	e.t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://app.test/", nil)
	for _, c := range b.jar.Cookies(r.URL) {
		r.AddCookie(c)
	}
	ff, _ := canonicalUser(b.user)
	f := e.h.flows.read(r, ff)
	if f == nil {
		e.t.Fatal("no flow cookie")
	}
	return f.ID
}

func (e *env) challenge(flowID string) challenge {
	e.t.Helper()
	rec, err := e.h.store.Get(e.t.Context(), keyChallenge+e.h.challenges.id(challengeSlot{binding: flowID}))
	if err != nil {
		e.t.Fatalf("reading challenge: %v", err)
	}
	ch, err := decodeRecord[challenge](rec.Value)
	if err != nil {
		e.t.Fatal(err)
	}
	return ch
}

// A second protected page opened during a sign-in keeps the code already
// sent and only changes where the sign-in ends.
func TestNewReturnKeepsTheFlow(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	b.do(request{target: "/.mfa/?return=/first"})
	b.postJSON("/send", nil)
	code := e.lastCode()
	st := decodeJSON(t, b.do(request{target: "/.mfa/?return=/second", header: http.Header{"Accept": {"application/json"}}}))
	if st["step"] != "verify" {
		t.Fatalf("after a new return path: %v", st)
	}
	st = decodeJSON(t, b.postJSON("/verify", map[string]string{"code": code}))
	if st["redirect"] != "/second" {
		t.Fatalf("verify: %v", st)
	}
}

// After the attempts of a challenge are used up, "send" starts a fresh
// challenge (as a new browser would), while "resend" cannot revive it;
// the failures still count toward the user's lockout.
func TestSendAfterExhaustedAttemptsStartsAfresh(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	b.postJSON("/send", nil)
	old := e.lastCode()
	for range 3 {
		b.postJSON("/verify", map[string]string{"code": wrongCode(old)})
	}
	sent := len(e.outboxFiles())
	b.postJSON("/resend", nil)
	if n := len(e.outboxFiles()); n != sent {
		t.Fatalf("resend of a dead challenge sent %d messages", n-sent)
	}
	if st := b.state(); st["step"] != "choose" || st["error"] != errCodeInvalid {
		t.Fatalf("after the attempts: %v", st)
	}
	st := decodeJSON(t, b.postJSON("/send", nil))
	if st["step"] != "verify" || st["attempts_left"] != 3.0 {
		t.Fatalf("send after a dead challenge: %v", st)
	}
	if got := b.postJSON("/verify", map[string]string{"code": e.lastCode()}).StatusCode; got != 200 {
		t.Fatalf("the fresh code: %d", got)
	}
}

// The page of a code out of attempts offers a new code.
func TestOutOfAttemptsPageOffersNewCode(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	b.postJSON("/send", nil)
	code := e.lastCode()
	csrf := b.state()["csrf_token"].(string)
	var body []byte
	for range 3 {
		resp := b.follow(b.do(request{target: "/.mfa/verify", form: url.Values{"code": {wrongCode(code)}, "csrf_token": {csrf}}}))
		body, _ = io.ReadAll(resp.Body)
	}
	if !strings.Contains(string(body), `action="/.mfa/send"`) || strings.Contains(string(body), `action="/.mfa/resend"`) {
		t.Fatalf("out-of-attempts page:\n%s", body)
	}
}
