package caddymfa

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// BenchmarkHotPath measures what the handler adds to a request that
// carries a valid session (DESIGN.md, request flow step 3): "plain" builds
// the same request and calls the next handler directly; "mfa" goes
// through ServeHTTP. The difference is the handler's cost.
func BenchmarkHotPath(b *testing.B) {
	h, _ := testConfig(b)
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err != nil {
		b.Fatal(err)
	}
	defer h.Cleanup()
	cookie, err := newSessionCookie(httptest.NewRequest(http.MethodGet, "http://app.test/", nil), h.sessions, "alice", "alice", "email")
	if err != nil {
		b.Fatal(err)
	}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	request := func() *http.Request {
		r := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
		r.Header.Set("Cookie", "theme=dark; "+cookie.Name+"="+cookie.Value)
		repl := caddy.NewReplacer()
		repl.Set("http.auth.user.id", "alice")
		c := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
		c = context.WithValue(c, caddyhttp.VarsCtxKey, map[string]any{})
		return r.WithContext(c)
	}
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := next.ServeHTTP(discard{}, request()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("mfa", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			r := request()
			if err := h.ServeHTTP(discard{}, r, next); err != nil {
				b.Fatal(err)
			}
			if r.Header.Get("Cookie") != "theme=dark" {
				b.Fatal("session rejected")
			}
		}
	})
}

type discard struct{}

func (discard) Header() http.Header         { return http.Header{} }
func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) WriteHeader(int)             {}

// BenchmarkSignIn measures one whole second-factor sign-in through the
// handler: the flow page (its CSRF token), send (a code rendered and
// written by the outbox transport), the flow page again, then verify (the
// attempt counted, the session stored), four requests through ServeHTTP
// as in the first version of this benchmark. The allocations counted are
// those of every goroutine: the handler's, the delivery queue's (the
// message written, the delivery log) and Badger's write goroutine's.
//
// The client is benchClient, not the tests' browser: it keeps the cookies
// by name and reads the CSRF token and the code out of the raw answer and
// message, with buffers reused from one sign-in to the next, where the
// browser's cookie jar, httptest recorder, JSON decoding and MIME parsing
// cost about 480 allocations a sign-in, a third of what the benchmark
// counted then, none of them the handler's. What Caddy's server does for
// a request before the handler (parsing it, its replacer and variables)
// is done once per request here too, as cheaply as Caddy does it.
func BenchmarkSignIn(b *testing.B) {
	h, outbox := testConfig(b)
	h.Lockout = &Lockout{Failures: 100}
	e := benchEnv(b, h, outbox)
	c := newBenchClient(e, "alice")
	b.ReportAllocs()
	for b.Loop() {
		c.signInByEmail(b)
		e.clock.add(time.Minute) // past the per-address cooldown
		// Empty the outbox, so finding the next code costs the same
		// whatever b.N is.
		b.StopTimer()
		c.emptyOutbox()
		b.StartTimer()
	}
}

// BenchmarkSignInStandalone measures a sign-in in standalone mode, the
// flow of the sign-in load tool (bench/signin) against a Caddy with
// allow_emails: the flow page, identify (the code queued once the answer
// is out, and sent), verify (the session stored), then the protected
// page with the new session. The client is benchClient, as in
// BenchmarkSignIn; the email channel waits for each delivery, so the code
// is in the outbox when identify returns and the delivery's allocations
// are counted in its own sign-in.
func BenchmarkSignInStandalone(b *testing.B) {
	h, outbox := testConfig(b)
	h.User = new(string)
	h.AllowEmails = []string{"*@example.net"}
	h.Lockout = &Lockout{Failures: 100}
	e := benchEnv(b, h, outbox)
	benchWaitForDelivery(b, e)
	c := newBenchClient(e, "")
	b.ReportAllocs()
	for n := 1; b.Loop(); n++ {
		c.signInStandalone(b, `"username":"erin@example.net"`)
		e.clock.add(time.Minute) // past the per-address cooldown
		b.StopTimer()
		c.emptyOutbox()
		if n%50 == 0 {
			// Every attempt counts in the user-wide lockout, which
			// successes do not reset and which expires in real time: 100
			// sign-ins would lock the user for a day.
			if err := e.h.store.Delete(b.Context(), keyLockout+lockName("erin@example.net")); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}

// BenchmarkSignInTOTP measures a sign-in with an authenticator app: the
// flow page, then verify (the attempt counted, the secret opened, the
// code checked and its step stored durably, the session stored). The
// client is benchClient, as in BenchmarkSignIn.
func BenchmarkSignInTOTP(b *testing.B) {
	h, outbox := testConfig(b)
	h.Lockout = &Lockout{Failures: 100}
	h.TOTP = &totp.Config{Issuer: "Example"}
	e := benchEnv(b, h, outbox)
	_, secret, _ := e.enrollApp("alice")
	key, err := totpref.Key(secret)
	if err != nil {
		b.Fatal(err)
	}
	c := newBenchClient(e, "alice")
	b.ReportAllocs()
	for b.Loop() {
		e.clock.add(30 * time.Second) // a new time step, past the replay guard
		c.signInByApp(b, key)
	}
}

// BenchmarkHotPathHandler is BenchmarkHotPath without building a request
// per iteration: one signed-in request goes through ServeHTTP again and
// again (its Cookie header restored each time), so the number is the
// handler's own cost.
func BenchmarkHotPathHandler(b *testing.B) {
	h, outbox := testConfig(b)
	e := benchEnv(b, h, outbox)
	br := e.browser("alice")
	br.postJSON("/send", nil)
	br.postJSON("/verify", map[string]string{"code": e.lastCode()})
	u, _ := url.Parse("http://app.test/")
	var cookie *http.Cookie
	for _, c := range br.jar.Cookies(u) {
		if c.Name == h.realm.plain[cookieSession] {
			cookie = c
		}
	}
	r := httptest.NewRequest(http.MethodGet, "http://app.test/app", nil)
	repl := caddy.NewReplacer()
	repl.Set("http.auth.user.id", "alice")
	c := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	c = context.WithValue(c, caddyhttp.VarsCtxKey, map[string]any{})
	r = r.WithContext(c)
	lines := []string{"theme=dark; " + cookie.Name + "=" + cookie.Value}
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error { return nil })
	b.ReportAllocs()
	for b.Loop() {
		lines[0] = "theme=dark; " + cookie.Name + "=" + cookie.Value
		r.Header["Cookie"] = lines[:1]
		if err := h.ServeHTTP(discard{}, r, next); err != nil {
			b.Fatal(err)
		}
		if r.Header.Get("Cookie") != "theme=dark" {
			b.Fatal("session rejected")
		}
	}
}

// benchConfig is the Caddy config the benchmarks run under: logs at
// INFO, Caddy's default, as in production. Without a loaded config Caddy
// gives every module a development logger at DEBUG, whose lines (Badger
// logs every write at debug level) would be most of what a sign-in
// allocates in a benchmark and none of what it allocates in production.
const benchConfig = `{"admin":{"disabled":true},"logging":{"logs":{"default":{"level":"INFO","writer":{"output":"discard"}}}}}`

// benchEnv provisions h for a benchmark, with a settable clock, and cleans
// it up when the benchmark ends. Unlike newEnv it takes a testing.B, and
// it runs under benchConfig.
func benchEnv(b *testing.B, h *Handler, outbox string) *env {
	b.Helper()
	if err := caddy.Load([]byte(benchConfig), true); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = caddy.Stop() })
	ctx, cancel := caddy.NewContext(caddy.ActiveContext())
	if err := h.Provision(ctx); err != nil {
		cancel()
		b.Fatal(err)
	}
	e := &env{t: b, h: h, ctx: ctx, cancel: cancel, outbox: outbox, clock: &testClock{t: time.Now()}}
	b.Cleanup(func() {
		_ = h.Cleanup()
		cancel()
	})
	h.now = e.clock.now
	h.wire()
	return e
}
