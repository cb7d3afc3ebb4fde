package caddymfa

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/binary"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// benchClient signs in through ServeHTTP for the sign-in benchmarks. It
// does what the flow needs and nothing more: it keeps the cookies by name,
// reads the CSRF token out of the JSON answer's text and the code out of
// the raw message, and reuses its request, answer and body buffers from
// one sign-in to the next. Each request still gets what Caddy's server
// gives the handler (a request of its own, a replacer with the
// first-factor user, the client address), so what a sign-in allocates
// here is what the handler, the delivery queue and the store allocate.
type benchClient struct {
	e    *env
	user string
	// pages are the requests of each path, parsed once; each request is
	// a copy of one with its own context.
	pages map[string]*http.Request
	hdr   http.Header
	// cookieLine is the request's Cookie header, rebuilt when a cookie
	// changes.
	cookieLine []string
	cookies    []benchCookie
	changed    bool
	body       benchBody
	buf        []byte // the JSON body of a POST
	csrf       []byte // the last CSRF token
	w          benchWriter
	mac        *benchTOTP
}

type benchCookie struct{ name, value string }

// benchBody is a request body that can be read again.
type benchBody struct{ bytes.Reader }

func (*benchBody) Close() error { return nil }

// benchWriter is a response writer whose header map and body buffer are
// reused.
type benchWriter struct {
	hdr    http.Header
	status int
	body   bytes.Buffer
}

func (w *benchWriter) Header() http.Header { return w.hdr }

func (w *benchWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *benchWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}

// Flush does nothing, as there is no connection, but it is there:
// Caddy's response writer flushes, and the standalone flow flushes its
// answer before it queues the code (heldAnswer.send), which costs an
// error's allocations with a writer that cannot.
func (w *benchWriter) Flush() {}

// benchNoUpstream is the next handler of the flow's requests, which
// never reach it.
var benchNoUpstream = caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error {
	return errors.New("a sign-in request reached the upstream")
})

// benchUpstream is the protected site: it answers 204, which the
// handler never does itself.
var benchUpstream = caddyhttp.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) error {
	w.WriteHeader(http.StatusNoContent)
	return nil
})

// benchProtected is the path of the protected page.
const benchProtected = "/app"

var (
	benchJSON      = []string{"application/json"}
	benchPaths     = []string{"/.mfa/", "/.mfa/identify", "/.mfa/send", "/.mfa/verify", benchProtected}
	csrfField      = []byte(`"csrf_token":"`)
	benchCodeBegin = []byte("\r\n    ") // the built-in text body indents the code
)

func newBenchClient(e *env, user string) *benchClient {
	c := &benchClient{e: e, user: user, pages: map[string]*http.Request{}, hdr: http.Header{},
		cookieLine: make([]string, 1), w: benchWriter{hdr: http.Header{}}}
	for _, p := range benchPaths {
		method := http.MethodPost
		if p == "/.mfa/" || p == benchProtected {
			method = http.MethodGet
		}
		r, err := http.NewRequest(method, "http://app.test"+p, nil)
		if err != nil {
			e.t.Fatal(err)
		}
		r.RemoteAddr = "192.0.2.10:1234"
		c.pages[p] = r
	}
	return c
}

// signInByEmail signs in from a fresh browser as benchClient's user: the
// flow page, send, the flow page, verify with the code from the outbox.
func (c *benchClient) signInByEmail(tb testing.TB) {
	c.fresh()
	c.page(tb)
	if st := c.post("/.mfa/send", ""); st != http.StatusOK {
		tb.Fatalf("send: %d: %s", st, c.w.body.Bytes())
	}
	code := c.outboxCode(tb)
	c.page(tb)
	if st := c.post("/.mfa/verify", `"code":"`+code+`"`); st != http.StatusOK {
		tb.Fatalf("verify: %d: %s", st, c.w.body.Bytes())
	}
	c.signedIn(tb)
}

// signInByApp signs in from a fresh browser with the code of an
// authenticator app whose key is key: the flow page, then verify.
func (c *benchClient) signInByApp(tb testing.TB, key []byte) {
	c.fresh()
	c.page(tb)
	if c.mac == nil {
		c.mac = &benchTOTP{mac: hmac.New(sha1.New, key)}
	}
	code := c.mac.code(uint64(c.e.clock.now().Unix() / 30))
	if st := c.post("/.mfa/verify", `"method":"totp","code":"`+code+`"`); st != http.StatusOK {
		tb.Fatalf("verify: %d: %s", st, c.w.body.Bytes())
	}
	c.signedIn(tb)
}

// signInStandalone signs in from a fresh browser in standalone mode, as
// the sign-in load tool does: the flow page, identify as name (the code
// is queued by a goroutine of its own once the answer is out), verify
// with the code from the outbox, then the protected page with the new
// session. e's email channel must wait for its deliveries
// (benchWaitForDelivery): once the handler's pending deliveries are
// done, the code is in the outbox.
func (c *benchClient) signInStandalone(tb testing.TB, identify string) {
	c.fresh()
	c.page(tb)
	if st := c.post("/.mfa/identify", identify); st != http.StatusOK {
		tb.Fatalf("identify: %d: %s", st, c.w.body.Bytes())
	}
	c.keepCSRF(tb)
	c.e.h.pending.Wait()
	code := c.outboxCode(tb)
	if st := c.post("/.mfa/verify", `"method":"email","code":"`+code+`"`); st != http.StatusOK {
		tb.Fatalf("verify: %d: %s", st, c.w.body.Bytes())
	}
	c.signedIn(tb)
	if st := c.do(benchProtected, nil); st != http.StatusNoContent {
		tb.Fatalf("protected page with the new session: %d: %s", st, c.w.body.Bytes())
	}
}

// benchDeliveryWaits is a sender that waits for the outcome of every
// delivery, even one its caller only queues: the standalone flow queues
// its code once the answer is out and does not wait for it, and a
// benchmark that reads the code from the outbox right after the answer
// must. It waits on the context's values without its cancellation; the
// delivery's work is the same as when the caller does not wait.
type benchDeliveryWaits struct{ authenticators.Sender }

func (s benchDeliveryWaits) Deliver(ctx context.Context, m authenticators.Message) error {
	return s.Sender.Deliver(context.WithoutCancel(ctx), m)
}

// benchWaitForDelivery makes e's email channel wait for its deliveries
// (benchDeliveryWaits).
func benchWaitForDelivery(tb testing.TB, e *env) {
	tb.Helper()
	for i, ch := range e.h.methods.list {
		if ch.method == methodEmail {
			ch.sender = benchDeliveryWaits{ch.sender}
			e.h.methods.values[i].sender = ch.sender
			return
		}
	}
	tb.Fatal("no email channel")
}

// fresh forgets the cookies: the next sign-in starts a new flow.
func (c *benchClient) fresh() {
	c.cookies = c.cookies[:0]
	c.changed = true
}

// signedIn checks that the last answer made a session.
func (c *benchClient) signedIn(tb testing.TB) {
	for _, k := range c.cookies {
		if k.name == c.e.h.realm.plain[cookieSession] {
			return
		}
	}
	tb.Fatalf("no session cookie after verify: %s", c.w.body.Bytes())
}

// page GETs the flow page as JSON and keeps its CSRF token.
func (c *benchClient) page(tb testing.TB) {
	if st := c.do("/.mfa/", nil); st != http.StatusOK {
		tb.Fatalf("flow page: %d: %s", st, c.w.body.Bytes())
	}
	c.keepCSRF(tb)
}

// keepCSRF keeps the CSRF token of the last answer.
func (c *benchClient) keepCSRF(tb testing.TB) {
	b := c.w.body.Bytes()
	i := bytes.Index(b, csrfField)
	if i < 0 {
		tb.Fatalf("no CSRF token in %s", b)
	}
	b = b[i+len(csrfField):]
	c.csrf = append(c.csrf[:0], b[:bytes.IndexByte(b, '"')]...)
}

// post POSTs a JSON body of the CSRF token and fields (JSON members, or
// "") to path.
func (c *benchClient) post(path, fields string) int {
	c.buf = append(c.buf[:0], `{"csrf_token":"`...)
	c.buf = append(c.buf, c.csrf...)
	c.buf = append(c.buf, '"')
	if fields != "" {
		c.buf = append(c.buf, ',')
		c.buf = append(c.buf, fields...)
	}
	c.buf = append(c.buf, '}')
	return c.do(path, c.buf)
}

// do sends one request to the handler, as Caddy's server hands it over,
// and keeps the cookies of the answer.
func (c *benchClient) do(path string, body []byte) int {
	repl := caddy.NewReplacer()
	if c.user != "" {
		repl.Set("http.auth.user.id", c.user)
	}
	vars := map[string]any{caddyhttp.ClientIPVarKey: "192.0.2.10", caddyhttp.TrustedProxyVarKey: false}
	ctx := context.WithValue(context.Background(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, vars)
	r := c.pages[path].WithContext(ctx)

	clear(c.hdr)
	c.hdr["Accept"] = benchJSON
	if body != nil {
		c.hdr["Content-Type"] = benchJSON
		c.body.Reset(body)
		r.Body, r.ContentLength = &c.body, int64(len(body))
	}
	if len(c.cookies) > 0 {
		if c.changed {
			var b strings.Builder
			for i, k := range c.cookies {
				if i > 0 {
					b.WriteString("; ")
				}
				b.WriteString(k.name)
				b.WriteByte('=')
				b.WriteString(k.value)
			}
			c.cookieLine[0] = b.String()
			c.changed = false
		}
		c.hdr["Cookie"] = c.cookieLine[:1]
	}
	r.Header = c.hdr

	clear(c.w.hdr)
	c.w.status = 0
	c.w.body.Reset()
	next := benchNoUpstream
	if path == benchProtected {
		next = benchUpstream
	}
	if err := c.e.h.ServeHTTP(&c.w, r, next); err != nil {
		var he caddyhttp.HandlerError
		if errors.As(err, &he) {
			c.w.WriteHeader(he.StatusCode)
		} else {
			c.w.WriteHeader(http.StatusInternalServerError)
		}
	}
	for _, line := range c.w.hdr["Set-Cookie"] {
		c.setCookie(line)
	}
	return c.w.status
}

// setCookie keeps or deletes the cookie of a Set-Cookie line.
func (c *benchClient) setCookie(line string) {
	pair, attrs, _ := strings.Cut(line, ";")
	name, value, _ := strings.Cut(pair, "=")
	del := strings.Contains(attrs, "Max-Age=0")
	c.changed = true
	for i, k := range c.cookies {
		if k.name == name {
			if del {
				c.cookies = append(c.cookies[:i], c.cookies[i+1:]...)
			} else {
				c.cookies[i].value = value
			}
			return
		}
	}
	if !del {
		c.cookies = append(c.cookies, benchCookie{name, value})
	}
}

// outboxCode reads the code out of the newest message in the outbox
// that has one (the benchmarks empty the outbox after each sign-in): the
// built-in text body has it on a line of its own, indented.
func (c *benchClient) outboxCode(tb testing.TB) string {
	names, err := filepath.Glob(filepath.Join(c.e.outbox, "*.eml"))
	if err != nil {
		tb.Fatal(err)
	}
	for i := len(names) - 1; i >= 0; i-- {
		raw, err := os.ReadFile(names[i])
		if err != nil {
			tb.Fatal(err)
		}
		if code := benchCode(raw); code != "" {
			return code
		}
	}
	tb.Fatalf("no code in the %d messages of the outbox", len(names))
	return ""
}

// benchCode is the code on a line of its own in raw, or "".
func benchCode(raw []byte) string {
	for {
		i := bytes.Index(raw, benchCodeBegin)
		if i < 0 {
			return ""
		}
		raw = raw[i+len(benchCodeBegin):]
		n := 0
		for n < len(raw) && raw[n] >= '0' && raw[n] <= '9' {
			n++
		}
		if n == 6 && bytes.HasPrefix(raw[n:], []byte("\r\n")) {
			return string(raw[:n])
		}
	}
}

// emptyOutbox removes the outbox's messages.
func (c *benchClient) emptyOutbox() {
	for _, f := range c.e.outboxFiles() {
		_ = os.Remove(f)
	}
}

// benchTOTP computes the 6-digit SHA-1 codes of one key (RFC 6238), as
// internal/totpref does, with one HMAC state.
type benchTOTP struct {
	mac interface {
		Reset()
		Write([]byte) (int, error)
		Sum([]byte) []byte
	}
	msg [8]byte
	sum [20]byte
	out [6]byte
}

func (t *benchTOTP) code(step uint64) string {
	binary.BigEndian.PutUint64(t.msg[:], step)
	t.mac.Reset()
	t.mac.Write(t.msg[:])
	sum := t.mac.Sum(t.sum[:0])
	off := sum[len(sum)-1] & 0x0f
	v := (binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff) % 1000000
	for i := len(t.out) - 1; i >= 0; i-- {
		t.out[i] = byte('0' + v%10)
		v /= 10
	}
	return string(t.out[:])
}

// TestBenchClient runs the benchmarks' sign-ins once each, so a change to
// the flow that the benchmarks' client does not follow fails here, and
// checks its codes against the reference implementation.
func TestBenchClient(t *testing.T) {
	h, outbox := testConfig(t)
	h.TOTP = &totp.Config{Issuer: "Example"}
	e := newEnv(t, h, outbox)
	_, secret, _ := e.enrollApp("alice")
	e.clock.add(time.Minute)
	c := newBenchClient(e, "alice")
	for range 2 {
		c.emptyOutbox()
		c.signInByEmail(t)
		e.clock.add(time.Minute)
	}
	key, err := totpref.Key(secret)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		e.clock.add(30 * time.Second)
		c.signInByApp(t, key)
	}
	// Standalone, as the load tool signs in.
	sh, soutbox := testConfig(t)
	sh.User = new(string)
	sh.AllowEmails = []string{"*@example.net"}
	se := newEnv(t, sh, soutbox)
	benchWaitForDelivery(t, se)
	sc := newBenchClient(se, "")
	for range 2 {
		sc.emptyOutbox()
		sc.signInStandalone(t, `"username":"erin@example.net"`)
		se.clock.add(time.Minute)
	}
	for step := range uint64(2000) {
		if got, want := c.mac.code(step*7919), totpref.HOTP(key, step*7919, 6, "sha1"); got != want {
			t.Fatalf("step %d: code %s, want %s", step*7919, got, want)
		}
	}
}
