package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// target is the Caddy under load.
type target struct {
	base   string // the site, "http://127.0.0.1:<port>"
	admin  string // the admin endpoint, "http://127.0.0.1:<port>"; TOTP enrollment needs it
	pid    int    // for CPU and memory from /proc; 0 for none
	domain string // users are u<N>@<domain>
}

// loadOptions say how to load the target.
type loadOptions struct {
	method  string // "email" or "totp"
	clients int
	users   int           // distinct users, at least clients
	timeout time.Duration // bound on one sign-in
}

// Steps of a sign-in, in order. "mail" is the wait for the emailed code
// after the identify answer; totp sign-ins have no "mail" step.
var stepNames = []string{"page", "identify", "mail", "verify", "protected"}

const (
	stepPage = iota
	stepIdentify
	stepMail
	stepVerify
	stepProtected
	numSteps
)

// runner runs sign-ins against a target. Users are split between
// clients (user i belongs to client i mod clients), so a recipient
// address names exactly one sign-in in progress.
type runner struct {
	t    target
	opts loadOptions
	mail *mailServer  // email
	http *http.Client // setup: the admin API
	apps *appPool     // totp
	// conns are the kept connections to the site not in use, at most
	// one a client.
	conns chan *httpConn
	addr  string // the site's host:port
}

func newRunner(t target, opts loadOptions, mail *mailServer) (*runner, error) {
	switch opts.method {
	case "email":
		if mail == nil {
			return nil, errors.New("the email method needs the SMTP server")
		}
	case "totp":
		if t.admin == "" {
			return nil, errors.New("the totp method needs the admin endpoint to enroll users")
		}
	default:
		return nil, fmt.Errorf("unknown method %q (email or totp)", opts.method)
	}
	if opts.clients < 1 {
		return nil, errors.New("clients must be at least 1")
	}
	opts.users = max(opts.users, opts.clients)
	if opts.timeout <= 0 {
		opts.timeout = 30 * time.Second
	}
	tr := &http.Transport{
		Proxy:               nil, // only ever 127.0.0.1
		MaxIdleConnsPerHost: opts.clients * 2,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	client := &http.Client{
		Transport: tr,
		// The JSON flow answers 200; a redirect would be a wrong turn.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	u, err := url.Parse(t.base)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("site URL %q: %v", t.base, err)
	}
	return &runner{t: t, opts: opts, mail: mail, http: client, conns: make(chan *httpConn, opts.clients), addr: u.Host}, nil
}

// conn returns a kept connection to the site, or a new one.
func (r *runner) conn() *httpConn {
	select {
	case c := <-r.conns:
		return c
	default:
		return &httpConn{addr: r.addr, host: r.addr}
	}
}

// putConn keeps c for the next sign-in, or closes it when enough are kept.
func (r *runner) putConn(c *httpConn) {
	select {
	case r.conns <- c:
	default:
		c.close()
	}
}

// close releases the runner's connections.
func (r *runner) close() {
	r.http.CloseIdleConnections()
	for {
		select {
		case c := <-r.conns:
			c.close()
		default:
			return
		}
	}
}

func (r *runner) userName(i int) string { return "u" + strconv.Itoa(i) + "@" + r.t.domain }

// setup prepares the users: TOTP users get an app through the admin API.
func (r *runner) setup(ctx context.Context) error {
	if r.opts.method != "totp" {
		return nil
	}
	pool, err := enrollApps(ctx, r.http, r.t.admin, r.opts.users, r.opts.clients, r.userName)
	if err != nil {
		return err
	}
	r.apps = pool
	return nil
}

// roundResult is what one round measured.
type roundResult struct {
	ok, failed int
	elapsed    time.Duration
	signIns    []time.Duration           // whole sign-ins that completed
	steps      [numSteps][]time.Duration // each step of completed sign-ins
	errs       []string                  // the first few failures
	userWaits  int                       // totp: times a client waited for a fresh time step
	waited     time.Duration             // totp: the time those waits took, summed
	before     procSample
	after      procSample
	hasProc    bool
	self       uint64 // the tool's own CPU ticks in the round
}

// maxFailures is how many failed sign-ins end a round early.
func maxFailures(n int) int { return max(10, n/10) }

// round runs n sign-ins with opts.clients concurrent clients.
func (r *runner) round(ctx context.Context, n int) (*roundResult, error) {
	res := &roundResult{}
	self, err := sampleProc(os.Getpid())
	if err != nil {
		return nil, fmt.Errorf("reading the tool's /proc: %w", err)
	}
	if r.t.pid > 0 {
		s, err := sampleProc(r.t.pid)
		if err != nil {
			return nil, fmt.Errorf("reading caddy's /proc: %w", err)
		}
		res.before, res.hasProc = s, true
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		remaining atomic.Int64
		failures  atomic.Int64
		mu        sync.Mutex
		wg        sync.WaitGroup
	)
	remaining.Store(int64(n))
	limit := int64(maxFailures(n))
	start := time.Now()
	for c := range r.opts.clients {
		wg.Go(func() {
			var (
				signIns []time.Duration
				steps   [numSteps][]time.Duration
				errs    []string
				ok      int
				waits   int
				waited  time.Duration
			)
			seq := 0
			for remaining.Add(-1) >= 0 && ctx.Err() == nil {
				var st signInTimes
				var err error
				if r.opts.method == "email" {
					user := r.userName(c + (seq%r.usersPerClient(c))*r.opts.clients)
					seq++
					st, err = r.emailSignIn(ctx, user)
				} else {
					var w time.Duration
					st, w, err = r.totpSignIn(ctx)
					if w > 0 {
						waits++
						waited += w
					}
				}
				if err != nil {
					if ctx.Err() != nil {
						break
					}
					if len(errs) < 3 {
						errs = append(errs, err.Error())
					}
					if failures.Add(1) >= limit {
						cancel()
					}
					continue
				}
				ok++
				signIns = append(signIns, st.total)
				for i, d := range st.steps {
					if d > 0 || i != stepMail {
						steps[i] = append(steps[i], d)
					}
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.ok += ok
			res.signIns = append(res.signIns, signIns...)
			for i := range steps {
				res.steps[i] = append(res.steps[i], steps[i]...)
			}
			if room := 5 - len(res.errs); room > 0 {
				res.errs = append(res.errs, errs[:min(room, len(errs))]...)
			}
			res.userWaits += waits
			res.waited += waited
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.failed = int(failures.Load())
	if s, err := sampleProc(os.Getpid()); err == nil {
		res.self = s.cpuTicks - self.cpuTicks
	}
	if res.hasProc {
		s, err := sampleProc(r.t.pid)
		if err != nil {
			return nil, fmt.Errorf("reading caddy's /proc: %w", err)
		}
		res.after = s
	}
	if res.failed >= int(limit) {
		return res, fmt.Errorf("%d sign-ins failed; first: %s", res.failed, strings.Join(res.errs, "; "))
	}
	return res, nil
}

// usersPerClient is how many users client c owns.
func (r *runner) usersPerClient(c int) int {
	n := r.opts.users / r.opts.clients
	if c < r.opts.users%r.opts.clients {
		n++
	}
	return n
}

// signInTimes are the durations of one sign-in and of its steps.
type signInTimes struct {
	total time.Duration
	steps [numSteps]time.Duration
}

// emailSignIn signs user in with an emailed code: the page, identify
// (which sends the code), the code by SMTP, verify, the protected page.
func (r *runner) emailSignIn(ctx context.Context, user string) (signInTimes, error) {
	var st signInTimes
	ctx, cancel := context.WithTimeout(ctx, r.opts.timeout)
	defer cancel()
	b := newBrowser(r)
	defer b.release()
	start := time.Now()
	page, err := b.step(ctx, &st, stepPage, http.MethodGet, "/.mfa/", nil, "identify")
	if err != nil {
		return st, err
	}
	codes := r.mail.expect(user)
	defer r.mail.forget(user)
	ans, err := b.step(ctx, &st, stepIdentify, http.MethodPost, "/.mfa/identify",
		fields{"username", user, "csrf_token", page.CSRFToken}, "verify")
	if err != nil {
		return st, err
	}
	t := time.Now()
	var code string
	select {
	case code = <-codes:
	case <-ctx.Done():
		return st, fmt.Errorf("mail: no code for %s: %w", user, ctx.Err())
	}
	st.steps[stepMail] = time.Since(t)
	if _, err := b.step(ctx, &st, stepVerify, http.MethodPost, "/.mfa/verify",
		fields{"method", "email", "code", code, "csrf_token", ans.CSRFToken}, "done"); err != nil {
		return st, err
	}
	if err := b.protected(ctx, &st); err != nil {
		return st, err
	}
	st.total = time.Since(start)
	return st, nil
}

// totpSignIn signs in a user of the app pool with a code from their app:
// the page, identify (which answers the method choice), verify, the
// protected page. It reports how long it waited for a time step in which
// a user could use a fresh code.
func (r *runner) totpSignIn(ctx context.Context) (signInTimes, time.Duration, error) {
	var st signInTimes
	app, code, waited, err := r.apps.take(ctx)
	if err != nil {
		return st, waited, err
	}
	defer r.apps.put(app)
	ctx, cancel := context.WithTimeout(ctx, r.opts.timeout)
	defer cancel()
	b := newBrowser(r)
	defer b.release()
	start := time.Now()
	page, err := b.step(ctx, &st, stepPage, http.MethodGet, "/.mfa/", nil, "identify")
	if err != nil {
		return st, waited, err
	}
	ans, err := b.step(ctx, &st, stepIdentify, http.MethodPost, "/.mfa/identify",
		fields{"username", app.user, "csrf_token", page.CSRFToken}, "choose")
	if err != nil {
		return st, waited, err
	}
	if _, err := b.step(ctx, &st, stepVerify, http.MethodPost, "/.mfa/verify",
		fields{"method", "totp", "code", code, "csrf_token", ans.CSRFToken}, "done"); err != nil {
		return st, waited, err
	}
	if err := b.protected(ctx, &st); err != nil {
		return st, waited, err
	}
	st.total = time.Since(start)
	return st, waited, nil
}

// browser is one sign-in's cookies; connections are shared. Its
// buffers come from a pool, so a sign-in allocates little of its own:
// the tool shares two cores with the Caddy it measures.
type browser struct {
	r       *runner
	cookies []cookie
	buf     *buffers
	conn    *httpConn // taken from the runner's at the first request
}

type cookie struct{ name, value string }

// buffers are a request body and an answer, reused across sign-ins.
type buffers struct {
	body   []byte
	cookie []byte
	answer bytes.Buffer
}

var bufferPool = sync.Pool{New: func() any { return new(buffers) }}

func newBrowser(r *runner) *browser {
	return &browser{r: r, buf: bufferPool.Get().(*buffers)}
}

// release returns the browser's buffers and connection; the browser is
// not used after.
func (b *browser) release() {
	bufferPool.Put(b.buf)
	b.buf = nil
	if b.conn != nil {
		b.r.putConn(b.conn)
		b.conn = nil
	}
}

// fields are the fields of a JSON request body, names and values
// alternating.
type fields []string

// appendJSON appends f as a JSON object.
func (f fields) appendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	for i := 0; i+1 < len(f); i += 2 {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendJSONString(dst, f[i])
		dst = append(dst, ':')
		dst = appendJSONString(dst, f[i+1])
	}
	return append(dst, '}')
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, everything else (UTF-8) as it is.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// answer is the part of a JSON answer the sign-in reads.
type answer struct {
	Step      string `json:"step"`
	CSRFToken string `json:"csrf_token"`
	Error     string `json:"error"`
	Message   string `json:"message"`
}

// step makes one request of the flow, times it as step i, and checks
// that it answers 200 with the wanted step.
func (b *browser) step(ctx context.Context, st *signInTimes, i int, method, path string, body fields, want string) (answer, error) {
	var ans answer
	t := time.Now()
	status, raw, err := b.do(ctx, method, path, body)
	st.steps[i] = time.Since(t)
	if err != nil {
		return ans, fmt.Errorf("%s: %w", stepNames[i], err)
	}
	if err := json.Unmarshal(raw, &ans); err != nil {
		return ans, fmt.Errorf("%s: status %d, not JSON: %.200s", stepNames[i], status, raw)
	}
	if status != http.StatusOK || ans.Step != want {
		return ans, fmt.Errorf("%s: status %d, step %q (want %q), error %q: %s", stepNames[i], status, ans.Step, want, ans.Error, ans.Message)
	}
	return ans, nil
}

// protected fetches the protected page with the new session.
func (b *browser) protected(ctx context.Context, st *signInTimes) error {
	t := time.Now()
	status, raw, err := b.do(ctx, http.MethodGet, "/", nil)
	st.steps[stepProtected] = time.Since(t)
	if err != nil {
		return fmt.Errorf("protected: %w", err)
	}
	if status != http.StatusOK || string(raw) != "ok" {
		return fmt.Errorf("protected: status %d: %.200s", status, raw)
	}
	return nil
}

// do sends a request with the browser's cookies, keeps the cookies of the
// answer and returns its status and body, which is valid until the next
// request of the browser.
func (b *browser) do(ctx context.Context, method, path string, body fields) (int, []byte, error) {
	var raw []byte
	if body != nil {
		b.buf.body = body.appendJSON(b.buf.body[:0])
		raw = b.buf.body
	}
	b.buf.cookie = b.buf.cookie[:0]
	for i, c := range b.cookies {
		if i > 0 {
			b.buf.cookie = append(b.buf.cookie, "; "...)
		}
		b.buf.cookie = append(b.buf.cookie, c.name...)
		b.buf.cookie = append(b.buf.cookie, '=')
		b.buf.cookie = append(b.buf.cookie, c.value...)
	}
	if b.conn == nil {
		b.conn = b.r.conn()
	}
	ans := httpAnswer{body: &b.buf.answer, cookies: b.setCookie}
	if err := b.conn.roundTrip(ctx, method, path, string(b.buf.cookie), raw, &ans); err != nil {
		return 0, nil, err
	}
	return ans.status, b.buf.answer.Bytes(), nil
}

// setCookie keeps or deletes the cookie of a Set-Cookie line. The handler
// deletes a cookie with Max-Age=0 (and an expiry in the past); every
// other cookie it sets lives longer than a sign-in.
func (b *browser) setCookie(line string) {
	pair, attrs, _ := strings.Cut(line, ";")
	name, value, ok := strings.Cut(strings.TrimSpace(pair), "=")
	if !ok || name == "" {
		return
	}
	del := strings.Contains(attrs, "Max-Age=0")
	for i, c := range b.cookies {
		if c.name == name {
			if del {
				b.cookies = append(b.cookies[:i], b.cookies[i+1:]...)
			} else {
				b.cookies[i].value = value
			}
			return
		}
	}
	if !del {
		b.cookies = append(b.cookies, cookie{name, value})
	}
}
