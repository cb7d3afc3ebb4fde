package integration

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// standaloneFrom starts a standalone sign-in of username from a fresh
// browser at ip (behind the trusted local proxy) and returns it.
func standaloneFrom(t *testing.T, username, ip string) *client {
	t.Helper()
	c := newClient(t)
	c.header.Set("X-Forwarded-For", ip)
	if r := c.postJSON("/.mfa/identify", map[string]string{"username": username}); r.StatusCode != http.StatusOK {
		t.Fatalf("identify %s from %s: status %d: %s", username, ip, r.StatusCode, r.body)
	}
	return c
}

// TestStandaloneAttackerCannotLockOutUser (SECURITY.md L54): a scripted
// attacker naming bob from one address range, again and again, with
// wrong codes, locks that range out for bob; bob, signed in from another
// range, keeps his session and signs in again at once.
func TestStandaloneAttackerCannotLockOutUser(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, standaloneSite(t, trustLocalProxy, smtpBlock(srv, "starttls"), relaxedThrottle, up))
	const user, home = "bob@example.com", "198.51.100.7"

	n := 1
	bob := standaloneFrom(t, user, home)
	if r := verify(t, bob, waitMessage(t, srv, n).code(t)); r.StatusCode != http.StatusOK {
		t.Fatalf("bob's sign-in: status %d: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, bob, "/"); !ok {
		t.Fatal("bob's session does not reach the upstream")
	}

	// The attacker: 5 rounds of 3 wrong codes from 203.0.113.0/24, over
	// the lockout of 10.
	for i := range 5 {
		n++
		c := standaloneFrom(t, user, "203.0.113."+strconv.Itoa(10+i))
		waitMessage(t, srv, n)
		for range 3 {
			if r := verify(t, c, "000000"); r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("attacker's guess: status %d", r.StatusCode)
			}
		}
	}
	// From the attacker's range even the right code is refused now.
	n++
	c := standaloneFrom(t, user, "203.0.113.99")
	if r := verify(t, c, waitMessage(t, srv, n).code(t)); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("right code from the locked range: status %d, want 401", r.StatusCode)
	}

	if _, ok := protected(t, bob, "/"); !ok {
		t.Fatal("the attack ended bob's session")
	}
	n++
	again := standaloneFrom(t, user, home)
	if r := verify(t, again, waitMessage(t, srv, n).code(t)); r.StatusCode != http.StatusOK {
		t.Fatalf("bob signing in again from home: status %d: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, again, "/"); !ok {
		t.Fatal("bob's new session does not reach the upstream")
	}
}

// defaultLimitsSite is alice behind basic_auth with an emailed code and
// the default send caps (a 30 s cooldown, 5 codes per user an hour).
func defaultLimitsSite(t *testing.T, srv *smtptest.Server, up *upstream) string {
	return site{
		basicAuth: bcryptHash(t, alicePassword),
		upstream:  up.addr(),
		mfa: `		storage badger ` + t.TempDir() + `
		secret_key ` + testSecret + `
		users {
			alice email alice@example.com
		}
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
		}`,
	}.caddyfile()
}

// TestSignOutAndInThreeTimesWithinAMinute (SECURITY.md L58): with the
// default caps, a user who signs out and in again three times in a row
// is never made to wait: a used code ends its cooldown.
func TestSignOutAndInThreeTimesWithinAMinute(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, defaultLimitsSite(t, srv, up))
	c := newClient(t).withBasicAuth("alice", alicePassword)
	for i := 1; i <= 4; i++ {
		signIn(t, c, srv, i)
		if _, ok := protected(t, c, "/page"); !ok {
			t.Fatalf("sign-in %d does not reach the upstream", i)
		}
		st := c.state()
		if r := c.postJSON("/.mfa/logout", map[string]string{"csrf_token": st["csrf_token"].(string)}); r.StatusCode != http.StatusOK {
			t.Fatalf("sign-out %d: status %d: %s", i, r.StatusCode, r.body)
		}
	}
}

// TestResendTooSoonKeepsTheCode (SECURITY.md L58): asking for a new code
// within the cooldown answers 429 with the wait (Retry-After, retry_after,
// "Try again in ... seconds" on the page), keeps the user on the code
// form, and the code already sent still works.
func TestResendTooSoonKeepsTheCode(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, defaultLimitsSite(t, srv, up))
	c := newClient(t).withBasicAuth("alice", alicePassword)
	code := sendCode(t, c, srv, 1)

	r := c.postJSON("/.mfa/resend", map[string]string{"method": "email"})
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("resend within the cooldown: status %d: %s", r.StatusCode, r.body)
	}
	v := r.json(t)
	wait, _ := strconv.Atoi(r.Header.Get("Retry-After"))
	if wait < 1 || wait > 30 || v["retry_after"] != float64(wait) || v["step"] != "verify" || v["error"] != "throttled" {
		t.Fatalf("Retry-After %q, answer %v: want the verify step with retry_after", r.Header.Get("Retry-After"), v)
	}
	if msg, _ := v["message"].(string); !strings.Contains(msg, "Try again in "+strconv.Itoa(wait)+" seconds") {
		t.Errorf("message %q does not say how long to wait", msg)
	}

	// The page: a 303 to the code form, which says how long to wait,
	// once; a reload posts nothing.
	page := c.get("/.mfa/", "text/html")
	f := form(t, page.body, "/.mfa/resend")
	r = c.postForm("/.mfa/resend", f.values)
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.mfa/" {
		t.Fatalf("resend form: status %d %q, want 303 /.mfa/", r.StatusCode, r.Header.Get("Location"))
	}
	r = c.get("/.mfa/", "text/html")
	if r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("the page the resend form lands on: status %d", r.StatusCode)
	}
	if body := string(r.body); !strings.Contains(body, "Try again in ") || !strings.Contains(body, `name="code"`) {
		t.Errorf("the page does not keep the code form and say how long to wait:\n%s", body)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages sent, want 1", n)
	}
	if r := verify(t, c, code); r.StatusCode != http.StatusOK {
		t.Fatalf("the code already sent: status %d: %s", r.StatusCode, r.body)
	}
}

// standaloneDefaultsSite is the standalone site of standaloneSite with the
// default send caps, behind the trusted local proxy, with alice known.
func standaloneDefaultsSite(t *testing.T, srv *smtptest.Server, up *upstream) string {
	return site{
		global:   trustLocalProxy,
		upstream: up.addr(),
		mfa: `		user ""
		storage badger ` + t.TempDir() + `
		secret_key ` + testSecret + `
		users {
			alice email alice@example.com
		}
		allow_emails *@example.com
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
		}`,
	}.caddyfile()
}

// TestMadeUpNamesLeaveKnownUserSignIn (SECURITY.md L55): 1,000 made-up
// names from 10 addresses, with the default caps, leave alice's sign-in
// working.
func TestMadeUpNamesLeaveKnownUserSignIn(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, standaloneDefaultsSite(t, srv, up))
	ok := 0
	for i := range 1000 {
		c := newClient(t)
		c.header.Set("X-Forwarded-For", "203.0."+strconv.Itoa(i%10)+".9")
		if r := c.postJSON("/.mfa/identify", map[string]string{"username": "nobody" + strconv.Itoa(i)}); r.StatusCode == http.StatusOK {
			ok++
		}
	}
	if ok != 100 {
		t.Errorf("%d made-up names answered 200, want 10 per address", ok)
	}
	alice := standaloneFrom(t, "alice", "198.51.100.7")
	if r := verify(t, alice, waitMessage(t, srv, 1).code(t)); r.StatusCode != http.StatusOK {
		t.Fatalf("alice's sign-in: status %d: %s", r.StatusCode, r.body)
	}
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages sent, want alice's only", n)
	}
}

// TestKnownAndUnknownPairsAnswerAlike (SECURITY.md L56, H37): the same
// sequence for a known name and address (alice, alice@example.com) and
// for an unknown pair gives the same statuses, bodies and headers.
func TestKnownAndUnknownPairsAnswerAlike(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, standaloneDefaultsSite(t, srv, up))
	run := func(name, email, ip string) []string {
		var out []string
		for _, who := range []string{name, email, name, email} {
			c := newClient(t)
			c.header.Set("X-Forwarded-For", ip)
			r := c.postJSON("/.mfa/identify", map[string]string{"username": who})
			v := r.json(t)
			delete(v, "csrf_token")
			delete(v, "user")
			delete(v, "destination")
			delete(v, "expires_in")
			// Retry-After, and the message that says it, may differ by
			// the second the clock moved between the runs.
			retry, _ := strconv.Atoi(r.Header.Get("Retry-After"))
			delete(v, "retry_after")
			delete(v, "message")
			out = append(out, fmt.Sprint(r.StatusCode, v, retry/5, cookieNames(r)))
		}
		return out
	}
	known := run("alice", "alice@example.com", "198.51.100.1")
	unknown := run("zed", "zed@elsewhere.example", "198.51.100.2")
	for i := range known {
		if known[i] != unknown[i] {
			t.Errorf("answer %d differs:\nknown:   %s\nunknown: %s", i, known[i], unknown[i])
		}
	}
	// The address right after the name: today's sign-in, not a wait that
	// would tell they are one user.
	if !strings.HasPrefix(known[1], "200 ") {
		t.Errorf("alice@example.com right after alice: %s, want 200", known[1])
	}
}
