package caddymfa

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
	"github.com/caddymfa/caddy-mfa/internal/mailtest"
	_ "github.com/caddymfa/caddy-mfa/storage/badger"
)

// testClock is a settable clock for TTL tests.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// env is one provisioned handler over a real Badger store and the outbox
// email transport, driven through ServeHTTP.
type env struct {
	t      testing.TB
	h      *Handler
	ctx    caddy.Context
	cancel context.CancelFunc
	outbox string
	clock  *testClock
	// upstream records what the next handler saw.
	mu       sync.Mutex
	upstream []*http.Request
	replVals []map[string]string
	// answering is the recorder of the request being served.
	answering *httptest.ResponseRecorder
}

// testConfig is the handler config most tests start from: second factor
// after basic_auth, alice and bob with addresses on file, and send caps
// off except max_sends (the tests of the caps set them back to nil, the
// defaults).
func testConfig(t testing.TB) (*Handler, string) {
	outbox := t.TempDir()
	h := &Handler{
		StorageRaw: json.RawMessage(`{"backend":"badger","dir":` + quote(t.TempDir()) + `}`),
		SecretKey:  strings.Repeat("k", 40),
		Users: []UserEntry{
			{Name: "alice", Email: "alice@example.com"},
			{Name: "bob", Email: "bob@example.org"},
			{Name: "carol", Phone: "+12015550100"}, // no email, and no sms block
			{Name: "dave", Email: "dave@example.com", Disabled: true},
		},
		Email: &email.Config{
			TransportRaw: json.RawMessage(`{"transport":"outbox","dir":` + quote(outbox) + `}`),
			From:         "Example <noreply@example.com>",
			Limits: authenticators.Limits{Throttle: &authenticators.Throttle{
				PerHour: -1, Per5m: -1, PerIPPerHour: -1, PerUserPerHour: -1, PerDestinationPerHour: -1, Cooldown: -1,
			}},
		},
	}
	return h, outbox
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func newEnv(t *testing.T, h *Handler, outbox string) *env {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	if err := h.Provision(ctx); err != nil {
		cancel()
		t.Fatalf("provision: %v", err)
	}
	if err := h.Validate(); err != nil {
		cancel()
		t.Fatalf("validate: %v", err)
	}
	clock := &testClock{t: time.Now()}
	h.now = clock.now
	h.wire()
	e := &env{t: t, h: h, ctx: ctx, cancel: cancel, outbox: outbox, clock: clock}
	t.Cleanup(e.close)
	return e
}

func (e *env) close() {
	_ = e.h.Cleanup()
	e.cancel() // cleans up the store module
}

// request is one request to the handler as Caddy would make it.
type request struct {
	method  string
	target  string
	user    string // {http.auth.user.id}; "" for none
	ip      string
	form    url.Values
	json    any
	header  http.Header
	https   bool
	trusted bool   // request came from a trusted proxy
	host    string // the Host header; default app.test
}

// serve runs one request through the handler and returns the response.
func (e *env) serve(rq request, jar http.CookieJar) *http.Response {
	e.t.Helper()
	var body io.Reader
	if rq.form != nil {
		body = strings.NewReader(rq.form.Encode())
	}
	if rq.json != nil {
		b, _ := json.Marshal(rq.json)
		body = strings.NewReader(string(b))
	}
	if rq.method == "" {
		rq.method = http.MethodGet
		if body != nil {
			rq.method = http.MethodPost
		}
	}
	scheme := "http"
	if rq.https {
		scheme = "https"
	}
	r := httptest.NewRequest(rq.method, scheme+"://app.test"+rq.target, body)
	if rq.https {
		r.TLS = &tlsState
	}
	if rq.host != "" {
		r.Host = rq.host
	}
	for k, vs := range rq.header {
		r.Header[k] = vs
	}
	if rq.form != nil {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if rq.json != nil {
		r.Header.Set("Content-Type", "application/json")
		if r.Header.Get("Accept") == "" {
			r.Header.Set("Accept", "application/json")
		}
	}
	if jar != nil {
		for _, c := range jar.Cookies(r.URL) {
			r.AddCookie(c)
		}
	}
	repl := caddyhttp.NewTestReplacer(r)
	if rq.user != "" {
		repl.Set("http.auth.user.id", rq.user)
	}
	ip := rq.ip
	if ip == "" {
		ip = "192.0.2.10"
	}
	vars := map[string]any{caddyhttp.ClientIPVarKey: ip, caddyhttp.TrustedProxyVarKey: rq.trusted}
	ctx := context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl)
	ctx = context.WithValue(ctx, caddyhttp.VarsCtxKey, vars)
	r = r.WithContext(ctx)

	w := httptest.NewRecorder()
	e.mu.Lock()
	e.answering = w
	e.mu.Unlock()
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.upstream = append(e.upstream, r)
		e.replVals = append(e.replVals, map[string]string{
			"mfa.user":   repl.ReplaceAll("{http.auth.mfa.user}", ""),
			"mfa.method": repl.ReplaceAll("{http.auth.mfa.method}", ""),
			"user.id":    repl.ReplaceAll("{http.auth.user.id}", ""),
		})
		w.WriteHeader(http.StatusOK)
		_, err := io.WriteString(w, "upstream")
		return err
	})
	if err := e.h.ServeHTTP(w, r, next); err != nil {
		var he caddyhttp.HandlerError
		if errors.As(err, &he) {
			w.WriteHeader(he.StatusCode)
		} else {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = io.WriteString(w, err.Error())
		}
	}
	resp := w.Result()
	if jar != nil {
		jar.SetCookies(r.URL, resp.Cookies())
	}
	return resp
}

var tlsState = tlsConnectionState()

// browser is a client with its own cookie jar.
type browser struct {
	e    *env
	jar  http.CookieJar
	user string
	ip   string
	// lang, when set, is the browser's Accept-Language.
	lang string
}

func (e *env) browser(user string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, jar: jar, user: user}
}

func (b *browser) do(rq request) *http.Response {
	b.e.t.Helper()
	if rq.user == "" {
		rq.user = b.user
	}
	if rq.ip == "" {
		rq.ip = b.ip
	}
	if b.lang != "" && rq.header.Get("Accept-Language") == "" {
		rq.header = rq.header.Clone()
		if rq.header == nil {
			rq.header = http.Header{}
		}
		rq.header.Set("Accept-Language", b.lang)
	}
	return b.e.serve(rq, b.jar)
}

// state GETs the flow's current step as JSON.
func (b *browser) state() map[string]any {
	b.e.t.Helper()
	resp := b.do(request{target: "/.mfa/", header: http.Header{"Accept": {"application/json"}}})
	return decodeJSON(b.e.t, resp)
}

// postJSON posts to a flow endpoint with the flow's CSRF token.
func (b *browser) postJSON(path string, fields map[string]string) *http.Response {
	b.e.t.Helper()
	st := b.state()
	if fields == nil {
		fields = map[string]string{}
	}
	if _, ok := fields["csrf_token"]; !ok {
		fields["csrf_token"], _ = st["csrf_token"].(string)
	}
	return b.do(request{method: http.MethodPost, target: "/.mfa" + path, json: fields})
}

func decodeJSON(t testing.TB, resp *http.Response) map[string]any {
	t.Helper()
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decoding JSON answer (status %d): %v: %s", resp.StatusCode, err, b)
	}
	return m
}

// outboxFiles returns the outbox's message files, oldest first.
func (e *env) outboxFiles() []string {
	var names []string
	_ = filepath.WalkDir(e.outbox, func(p string, d os.DirEntry, err error) error {
		// The outbox writes ".tmp-*" files and renames them when complete.
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".eml") && !strings.HasPrefix(d.Name(), ".") {
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	return names
}

// outboxMessages returns the outbox's messages, oldest first.
func (e *env) outboxMessages() []string {
	e.t.Helper()
	names := e.outboxFiles()
	var out []string
	for _, n := range names {
		b, err := os.ReadFile(n)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

var codePattern = regexp.MustCompile(`\b\d{6}\b`)

// lastCode returns the code in the newest outbox message that carries
// one (security notices, queued in the background, carry none).
func (e *env) lastCode() string {
	e.t.Helper()
	names := e.outboxFiles()
	for i := len(names) - 1; i >= 0; i-- {
		raw, err := os.ReadFile(names[i])
		if err != nil {
			e.t.Fatal(err)
		}
		m, err := mailtest.Parse(raw)
		if err != nil {
			e.t.Fatal(err)
		}
		if isNotice(m.Text) {
			continue
		}
		code := codePattern.FindString(m.Text)
		if code == "" {
			e.t.Fatalf("no code in message text %q", m.Text)
		}
		return code
	}
	e.t.Fatal("no code message in the outbox")
	return ""
}

// isNotice reports whether a message's text is a security notice, in
// any shipped language: notices end with the catalog's security.automatic.
func isNotice(text string) bool {
	for _, l := range i18n.Builtin().Languages() {
		if strings.Contains(text, l.T("security.automatic")) {
			return true
		}
	}
	return false
}

// signIn runs the second-factor flow to the end and returns the browser.
func (e *env) signIn(user string) *browser {
	e.t.Helper()
	return e.signInWith(e.browser(user))
}

// signInWith runs the second-factor flow to the end in browser b.
func (e *env) signInWith(b *browser) *browser {
	e.t.Helper()
	resp := b.postJSON("/send", map[string]string{"method": "email"})
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("send: status %d: %v", resp.StatusCode, decodeJSON(e.t, resp))
	}
	resp = b.postJSON("/verify", map[string]string{"method": "email", "code": e.lastCode()})
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("verify: status %d: %v", resp.StatusCode, decodeJSON(e.t, resp))
	}
	return b
}
