package caddymfa

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

// standaloneEnv is a standalone handler (no first factor) over the test
// users, with no send caps.
func standaloneEnv(t *testing.T, lock *Lockout) *env {
	t.Helper()
	h, outbox := testConfig(t)
	h.User = new(string)
	h.Lockout = lock
	return newEnv(t, h, outbox)
}

// identifyFrom starts a standalone sign-in of name from ip and, when a
// code goes out, waits for it to be delivered (sent counts the messages
// expected in the outbox by then; 0 waits for nothing).
func (e *env) identifyFrom(name, ip string, sent int) *browser {
	e.t.Helper()
	b := e.browser("")
	b.ip = ip
	csrf, _ := b.state()["csrf_token"].(string)
	resp := b.do(request{method: http.MethodPost, target: "/.mfa/identify", json: map[string]string{"username": name, "csrf_token": csrf}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("identify %s from %s: status %d", name, ip, resp.StatusCode)
	}
	if sent > 0 {
		e.h.pending.Wait()
		waitFor(e.t.(*testing.T), func() bool { return len(e.outboxFiles()) >= sent })
	}
	return b
}

// guess posts a code and returns the status.
func (b *browser) guess(code string) int {
	b.e.t.Helper()
	resp := b.postJSON("/verify", map[string]string{"code": code})
	resp.Body.Close()
	return resp.StatusCode
}

// SECURITY.md L54: a guess at a challenge with no delivered code (a user
// without an address, a send that was refused) is refused and counts in
// no lockout, in both modes; it still counts in the challenge, so the
// answer is the one any wrong code gets.
func TestGuessWithoutDeliveredCodeNotCounted(t *testing.T) {
	t.Run("standalone, no address", func(t *testing.T) {
		e := standaloneEnv(t, &Lockout{Failures: 1})
		b := e.identifyFrom("carol", "203.0.113.5", 0)
		left := []any{}
		for range 3 {
			resp := b.postJSON("/verify", map[string]string{"code": "000000"})
			st := decodeJSON(t, resp)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("guess: status %d", resp.StatusCode)
			}
			left = append(left, st["attempts_left"])
		}
		if rep, _ := e.h.lockout.report(t.Context(), "carol"); rep.Failures != 0 || len(rep.Networks) != 0 {
			t.Fatalf("guesses at a code never sent counted: %+v", rep)
		}
		if left[0] == left[1] {
			t.Errorf("attempts_left did not move (%v): an unsent challenge must answer like a sent one", left)
		}
	})
	t.Run("second factor, nothing sent", func(t *testing.T) {
		h, outbox := testConfig(t)
		h.Lockout = &Lockout{Failures: 1}
		e := newEnv(t, h, outbox)
		b := e.browser("alice")
		for range 5 {
			if got := b.guess("000000"); got != http.StatusUnauthorized {
				t.Fatalf("guess: status %d", got)
			}
		}
		if locked, _ := e.h.lockout.locked(t.Context(), "alice", ""); locked {
			t.Fatal("alice locked by guesses at a code she was never sent")
		}
		// She signs in as usual.
		e.signIn("alice")
	})
	t.Run("standalone, send refused", func(t *testing.T) {
		h, outbox := testConfig(t)
		h.User = new(string)
		h.Lockout = &Lockout{Failures: 1}
		h.Email.Throttle.PerIPPerHour = 1
		e := newEnv(t, h, outbox)
		e.identifyFrom("bob", "203.0.113.5", 1)
		b := e.browser("")
		b.ip = "203.0.113.5"
		csrf, _ := b.state()["csrf_token"].(string)
		resp := b.do(request{method: http.MethodPost, target: "/.mfa/identify", json: map[string]string{"username": "alice", "csrf_token": csrf}})
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("second identify from the address: status %d, want 429", resp.StatusCode)
		}
		for range 5 {
			b.guess("000000")
		}
		if rep, _ := e.h.lockout.report(t.Context(), "alice"); rep.Failures != 0 || len(rep.Networks) != 0 {
			t.Fatalf("guesses after a refused send counted: %+v", rep)
		}
	})
}

// SECURITY.md L54: in standalone mode an attacker guessing from one
// network locks that network out for the user, not the user: she signs
// in from her own network, and her session lives on.
func TestStandaloneLockoutStaysInTheGuessersNetwork(t *testing.T) {
	e := standaloneEnv(t, &Lockout{Failures: 3, Window: caddy.Duration(15 * time.Minute)})
	const home, attacker = "198.51.100.7", "203.0.113.9"
	sent := 0
	// alice signs in from home.
	sent++
	alice := e.identifyFrom("alice", home, sent)
	if got := alice.guess(e.lastCode()); got != http.StatusOK {
		t.Fatalf("alice's sign-in: status %d", got)
	}
	// The attacker names alice from many addresses of one /24, again and
	// again, and guesses.
	for i := range 6 {
		sent++
		b := e.identifyFrom("alice", "203.0.113."+strconv.Itoa(10+i), sent)
		for range 3 {
			b.guess("000000")
		}
	}
	if locked, _ := e.h.lockout.locked(t.Context(), "alice", clientNetwork(attacker)); !locked {
		t.Fatal("the attacker's network is not locked out")
	}
	// Locked out there: even the right code fails from that network.
	sent++
	b := e.identifyFrom("alice", attacker, sent)
	if got := b.guess(e.lastCode()); got != http.StatusUnauthorized {
		t.Fatalf("right code from the locked network: status %d, want 401", got)
	}
	if !alice.signedIn() {
		t.Fatal("alice's session ended by a lockout an unauthenticated client caused")
	}
	sent++
	again := e.identifyFrom("alice", home, sent)
	if got := again.guess(e.lastCode()); got != http.StatusOK {
		t.Fatalf("alice signing in from home after the attack: status %d", got)
	}
	rep, err := e.h.lockout.report(t.Context(), "alice")
	if err != nil || len(rep.Networks) != 1 || rep.Networks[0].Network != "203.0.113.0/24" || rep.Networks[0].LockedUntil == nil {
		t.Fatalf("report: %+v %v", rep, err)
	}
}

// SECURITY.md L54: the user-wide cap bounds guessing spread over many
// networks; a locked network's attempts do not count user-wide.
func TestStandaloneUserWideLockBoundsDistributedGuessing(t *testing.T) {
	e := standaloneEnv(t, &Lockout{Failures: 2, UserFailures: 6})
	sent := 0
	// One network, locked after 2 failures: its further guesses are not
	// compared and do not count user-wide.
	for range 3 {
		sent++
		b := e.identifyFrom("alice", "203.0.113.1", sent)
		for range 3 {
			b.guess("000000")
		}
	}
	if rep, _ := e.h.lockout.report(t.Context(), "alice"); rep.Failures != 2 || rep.LockedUntil != nil {
		t.Fatalf("after one network: %+v, want 2 user-wide failures", rep)
	}
	// Guesses from three more networks reach the user-wide cap.
	for i := range 3 {
		sent++
		b := e.identifyFrom("alice", "10.0."+strconv.Itoa(i)+".1", sent)
		b.guess("000000")
		b.guess("000000")
	}
	sent++
	b := e.identifyFrom("alice", "192.0.2.77", sent)
	if got := b.guess(e.lastCode()); got != http.StatusUnauthorized {
		t.Fatalf("right code over the user-wide cap: status %d, want 401", got)
	}
	rep, _ := e.h.lockout.report(t.Context(), "alice")
	if rep.LockedUntil == nil {
		t.Fatalf("not locked user-wide: %+v", rep)
	}
	if want := e.clock.now().Add(24 * time.Hour); !rep.LockedUntil.Equal(want) {
		t.Errorf("user-wide lock until %v, want %v (the default user window)", rep.LockedUntil, want)
	}
	// The administrator ends every lock of the user at once.
	if err := e.h.lockout.unlock(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	if rep, _ := e.h.lockout.report(t.Context(), "alice"); rep.Failures != 0 || len(rep.Networks) != 0 {
		t.Fatalf("after unlock: %+v", rep)
	}
}

// Second-factor mode keeps one count per user: the lock that the
// password holder's guesses cause ends her sessions.
func TestSecondFactorLockoutStillEndsSessions(t *testing.T) {
	h, outbox := testConfig(t)
	h.Lockout = &Lockout{Failures: 2}
	e := newEnv(t, h, outbox)
	alice := e.signIn("alice")
	b := e.browser("alice")
	if resp := b.postJSON("/send", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("send: %d", resp.StatusCode)
	}
	for range 3 {
		b.guess("000000")
	}
	if alice.signedIn() {
		t.Fatal("the lock in second-factor mode did not end the session")
	}
}

func TestClientNetwork(t *testing.T) {
	tests := map[string]string{
		"203.0.113.9":         "203.0.113.0/24",
		"::ffff:203.0.113.9":  "203.0.113.0/24",
		"2001:db8:1:2ff::1":   "2001:db8:1:200::/56",
		"fe80::1%eth0":        "fe80::/56",
		"not an address":      "unknown",
		"":                    "unknown",
		"2001:db8:1:2ff:ab::": "2001:db8:1:200::/56",
	}
	for in, want := range tests {
		if got := clientNetwork(in); got != want {
			t.Errorf("clientNetwork(%q) = %q, want %q", in, got, want)
		}
	}
	if raceEnabled {
		return
	}
	// The network's text is the one allocation.
	if n := testing.AllocsPerRun(100, func() { clientNetwork("203.0.113.9") }); n != 1 {
		t.Errorf("clientNetwork allocates %v times, want 1", n)
	}
}

// SECURITY.md L54: in standalone mode a user's own sign-ins never add up
// to a user-wide lock, however often she signs in (each attempt is counted
// before its code is compared, and a success takes its count back), and
// they do not wipe the failures others caused, so the user-wide cap still
// bounds guessing from many networks.
func TestStandaloneOwnSignInsNeverLock(t *testing.T) {
	e := standaloneEnv(t, &Lockout{Failures: 2, UserFailures: 3})
	sent := 0
	sent++
	away := e.identifyFrom("alice", "203.0.113.1", sent)
	away.guess("000000")
	away.guess("000000")
	for i := range 6 {
		e.clock.add(61 * time.Minute) // past the hourly send cap
		sent++
		b := e.identifyFrom("alice", "198.51.100.7", sent)
		if got := b.guess(e.lastCode()); got != http.StatusOK {
			t.Fatalf("her sign-in %d with 2 failures of 3 user-wide: status %d, want 200", i+1, got)
		}
	}
	if rep, _ := e.h.lockout.report(t.Context(), "alice"); rep.Failures != 2 || rep.LockedUntil != nil {
		t.Fatalf("after six sign-ins of her own: %+v, want the 2 failures from away and no lock", rep)
	}
	// One more failure from another network reaches the cap: the right
	// code is refused everywhere.
	sent++
	e.identifyFrom("alice", "10.9.8.7", sent).guess("000000")
	sent++
	b := e.identifyFrom("alice", "198.51.100.7", sent)
	if got := b.guess(e.lastCode()); got != http.StatusUnauthorized {
		t.Fatalf("right code at the user-wide cap: status %d, want 401", got)
	}
}

// The user-wide count of standalone mode survives the user's own
// sign-ins, so it bounds the guesses per window however often she signs
// in; her network's count starts again, and her success takes back only
// its own count.
func TestStandaloneSuccessKeepsUserWideCount(t *testing.T) {
	l, _ := newTestLockout(t, 3)
	l.perNetwork, l.userFailures, l.userWindow = true, 10, 24*time.Hour
	ctx := t.Context()
	const home, away = "198.51.100.0/24", "203.0.113.0/24"
	l.count(ctx, "alice", away)
	l.count(ctx, "alice", away)
	l.count(ctx, "alice", home)
	if err := l.clear(ctx, "alice", home); err != nil {
		t.Fatal(err)
	}
	rep, _ := l.report(ctx, "alice")
	if rep.Failures != 2 {
		t.Fatalf("user-wide failures %d after her success, want the 2 from away", rep.Failures)
	}
	if len(rep.Networks) != 1 || rep.Networks[0].Network != away || rep.Networks[0].Failures != 2 {
		t.Fatalf("networks after her success: %+v, want only %s with 2", rep.Networks, away)
	}
}

// SECURITY.md L58: refused sends count toward no cap. alice's sends over
// her per-user cap are refused and take back their count in the per-IP
// cap, so bob, from the same address, still gets his code; every 429
// says how long to wait.
func TestRefusedSendsCountTowardNoCap(t *testing.T) {
	h, outbox := testConfig(t)
	h.Email.Throttle.PerUserPerHour = 2
	h.Email.Throttle.PerIPPerHour = 3
	h.Users = append(h.Users, UserEntry{Name: "erin", Email: "erin@example.net"})
	e := newEnv(t, h, outbox)
	e.clock.set(e.clock.now().Truncate(time.Hour).Add(time.Hour + time.Minute))
	var got []int
	for range 6 {
		resp := e.browser("alice").postJSON("/send", nil)
		st := decodeJSON(t, resp)
		got = append(got, resp.StatusCode)
		if resp.StatusCode == http.StatusTooManyRequests {
			wait := resp.Header.Get("Retry-After")
			if wait != "3540" || st["retry_after"] != float64(3540) || st["message"] != "Too many codes were requested. Try again in 59 minutes." {
				t.Fatalf("429: Retry-After %q, answer %v", wait, st)
			}
		}
	}
	if fmt.Sprint(got) != "[200 200 429 429 429 429]" {
		t.Fatalf("alice's sends: %v", got)
	}
	if resp := e.browser("bob").postJSON("/send", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's send from the same address: status %d, want 200 (refused sends must not count)", resp.StatusCode)
	}
	if resp := e.browser("erin").postJSON("/send", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("a fourth send from the address: status %d, want 429", resp.StatusCode)
	}
}

func TestWaitText(t *testing.T) {
	for secs, want := range map[int]string{0: "1 second", 1: "1 second", 25: "25 seconds", 89: "89 seconds", 90: "2 minutes", 3540: "59 minutes", 5399: "90 minutes", 5400: "2 hours", 86400: "24 hours"} {
		if got := waitText(i18n.Builtin().English(), secs); got != want {
			t.Errorf("waitText(%d) = %q, want %q", secs, got, want)
		}
	}
}

// adminCall runs one admin API request against e's handler and decodes
// the JSON answer.
func (e *env) adminCall(method, path string) map[string]any {
	e.t.Helper()
	r := httptest.NewRequest(method, "http://localhost:2019"+path+"?site="+url.QueryEscape(storeLocation(e.h.store)), nil)
	w := httptest.NewRecorder()
	if err := new(AdminAPI).serve(w, r); err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	var v map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		e.t.Fatalf("%s %s: %v: %s", method, path, err, w.Body.Bytes())
	}
	return v
}

// SECURITY.md L58: the administrator sees a user's active throttles with
// their expiry, and unlock clears them with the lockout.
func TestAdminShowsAndClearsThrottles(t *testing.T) {
	h, outbox := testConfig(t)
	h.Email.Throttle.PerUserPerHour = 2
	h.Email.Throttle.Cooldown = caddy.Duration(30 * time.Second)
	e := newEnv(t, h, outbox)
	for _, want := range []int{200, 200, 429} {
		e.clock.add(31 * time.Second)
		if resp := e.browser("alice").postJSON("/send", nil); resp.StatusCode != want {
			t.Fatalf("send: status %d, want %d", resp.StatusCode, want)
		}
	}
	v := e.adminCall(http.MethodGet, "/mfa/users/alice")
	scopes := map[string]any{}
	for _, th := range v["throttles"].([]any) {
		m := th.(map[string]any)
		scopes[m["scope"].(string)] = m["count"]
		if m["expires"] == nil {
			t.Errorf("throttle without expiry: %v", m)
		}
	}
	if scopes["user/email"] != float64(2) {
		t.Fatalf("throttles %v, want user/email with 2 sends", v["throttles"])
	}
	if _, ok := scopes["cooldown"]; !ok {
		t.Errorf("throttles %v, want the cooldown of alice's address", v["throttles"])
	}
	e.adminCall(http.MethodPost, "/mfa/users/alice/unlock")
	if v := e.adminCall(http.MethodGet, "/mfa/users/alice"); len(v["throttles"].([]any)) != 0 {
		t.Fatalf("throttles after unlock: %v", v["throttles"])
	}
	if resp := e.browser("alice").postJSON("/send", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("send after unlock: status %d", resp.StatusCode)
	}
}

// SECURITY.md L58, H37: messages tell the truth. With a first factor an
// undelivered code says so; in standalone mode an undelivered code and a
// used-up one read the same generic words, never "too many attempts".
func TestChallengeMessagesTellTheTruth(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	now := e.clock.now()
	failed := &challenge{Method: methodEmail, State: stateDead, Failed: true, ExpiresAt: now.Add(time.Minute)}
	exhausted := &challenge{Method: methodEmail, State: stateDead, Attempts: 3, ExpiresAt: now.Add(time.Minute)}
	msg := func(ch *challenge, p principal) string {
		v := &view{}
		e.h.pages.challenge(ch, p, now, v)
		return v.Error + ": " + v.Message
	}
	second := principal{firstFactor: "alice", user: "alice"}
	if got := msg(failed, second); got != "delivery_failed: The code could not be delivered. Try again later or contact the administrator." {
		t.Errorf("second factor, failed delivery: %q", got)
	}
	standalone := principal{user: "alice"}
	want := "invalid_code: That code can't be used. Ask for a new one."
	for name, ch := range map[string]*challenge{"failed": failed, "exhausted": exhausted} {
		if got := msg(ch, standalone); got != want {
			t.Errorf("standalone, %s: %q, want %q", name, got, want)
		}
	}
}

// identifyAs posts identify for name from ip in a fresh browser and
// returns the answer's shape: status, body without the CSRF token and the
// echo of the name, Retry-After, and cookie names.
func (e *env) identifyAs(name, ip string) (int, string) {
	e.t.Helper()
	b := e.browser("")
	b.ip = ip
	csrf, _ := b.state()["csrf_token"].(string)
	resp := b.do(request{method: http.MethodPost, target: "/.mfa/identify", json: map[string]string{"username": name, "csrf_token": csrf}})
	st := decodeJSON(e.t, resp)
	delete(st, "csrf_token")
	delete(st, "user")
	delete(st, "destination") // the masked echo of what was typed
	var cookies []string
	for _, c := range resp.Cookies() {
		cookies = append(cookies, c.Name)
	}
	return resp.StatusCode, fmt.Sprint(resp.StatusCode, st, resp.Header.Get("Retry-After"), cookies)
}

// SECURITY.md L55: names that get no message do not use up the
// site-wide caps. 1,000 made-up names from 10 addresses, with the default
// caps: each address is refused after its own 10, and alice, from her
// own address, still gets her code.
func TestMadeUpNamesDoNotDrainCaps(t *testing.T) {
	h, outbox := testConfig(t)
	h.User = new(string)
	h.Email.Throttle = nil // the defaults
	e := newEnv(t, h, outbox)
	e.clock.set(e.clock.now().Truncate(time.Hour).Add(time.Hour + time.Minute))
	ok := 0
	for i := range 1000 {
		if status, _ := e.identifyAs(fmt.Sprintf("nobody%d", i), fmt.Sprintf("203.0.%d.7", i%10)); status == http.StatusOK {
			ok++
		}
	}
	if ok != 100 {
		t.Errorf("%d made-up names answered 200, want 10 per address", ok)
	}
	b := e.identifyFrom("alice", "198.51.100.7", 1)
	if resp := b.postJSON("/verify", map[string]string{"code": e.lastCode()}); resp.StatusCode != http.StatusOK {
		t.Fatalf("alice's sign-in after the made-up names: status %d: %v", resp.StatusCode, decodeJSON(t, resp))
	}
}

// SECURITY.md L55: in standalone mode a client cannot use up a user's
// sends from another network; the user-wide cap (3 times the per-user
// cap) bounds the mail one user is sent.
func TestStandaloneSendCapsPerNetwork(t *testing.T) {
	h, outbox := testConfig(t)
	h.User = new(string)
	h.Email.Throttle.PerUserPerHour = 2
	h.Email.Throttle.PerDestinationPerHour = 2
	e := newEnv(t, h, outbox)
	e.clock.set(e.clock.now().Truncate(time.Hour).Add(time.Hour + time.Minute))
	statuses := func(ip string, n int) string {
		var got []int
		for range n {
			s, _ := e.identifyAs("alice", ip)
			got = append(got, s)
		}
		return fmt.Sprint(got)
	}
	if got := statuses("203.0.113.1", 3); got != "[200 200 429]" {
		t.Fatalf("from the attacker's network: %v", got)
	}
	if got := statuses("198.51.100.7", 1); got != "[200]" {
		t.Fatalf("alice from her network: %v", got)
	}
	waitFor(t, func() bool { return len(e.outboxFiles()) == 3 })
	// Two more networks reach the user-wide cap of 6.
	statuses("192.0.2.1", 2)
	statuses("10.1.1.1", 1)
	if got := statuses("10.9.9.9", 1); got != "[429]" {
		t.Fatalf("over the user-wide cap: %v", got)
	}
	e.h.pending.Wait()
	waitFor(t, func() bool { return len(e.outboxFiles()) == 6 })
}

// SECURITY.md L56, H37: no limit tells whether a name exists or whether
// two names share an address. The same sequences for a known pair (alice,
// alice@example.com: one address) and an unknown one give the same
// statuses, bodies, Retry-After and cookies; what belongs to the address
// is refused silently.
func TestNoOracleInLimits(t *testing.T) {
	h, outbox := testConfig(t)
	h.User = new(string)
	h.AllowEmails = []string{"*@example.com"}
	h.Email.Throttle = nil // the defaults: a 30 s cooldown, 5 an hour per user and address
	e := newEnv(t, h, outbox)
	// Just after the next hour begins: no window rolls over in a run,
	// and store expiries (in real time) stay ahead.
	start := e.clock.now().Truncate(time.Hour).Add(time.Hour + time.Minute)
	run := func(name, email, ip string) []string {
		e.clock.set(start) // both runs see the same clock
		var answers []string
		step := func(who string) {
			_, shape := e.identifyAs(who, ip)
			answers = append(answers, shape)
		}
		// name, then its address at once, then the name again within the
		// cooldown; then, a cooldown apart, both names again and again.
		step(name)
		step(email)
		step(name)
		for range 6 {
			e.clock.add(31 * time.Second)
			step(name)
			step(email)
		}
		return answers
	}
	known := run("alice", "alice@example.com", "198.51.100.1")
	unknown := run("zed", "zed@elsewhere.example", "198.51.100.2")
	for i := range known {
		if known[i] != unknown[i] {
			t.Errorf("answer %d differs:\nknown:   %s\nunknown: %s", i, known[i], unknown[i])
		}
	}
	e.h.pending.Wait()
	// alice's address got mail, but no more than its cap of 5.
	waitFor(t, func() bool { return len(e.outboxFiles()) >= 1 })
	if n := len(e.outboxFiles()); n > 5 {
		t.Errorf("alice's address got %d messages, over its cap of 5", n)
	}
}
