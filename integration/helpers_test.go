package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/net/html"

	_ "github.com/caddymfa/caddy-mfa"
	"github.com/caddymfa/caddy-mfa/internal/mailtest"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// Fixed addresses of the in-process Caddy.
const (
	adminAddr = "localhost:2999"
	siteURL   = "http://localhost:9080"
	// testSecret is a secret_key of the required length.
	testSecret = "integration-test-secret-key-0123456789abcdef"
)

// globalOptions is the global options block every test config starts
// with; extra goes inside it.
func globalOptions(extra string) string {
	return `{
	admin ` + adminAddr + `
	http_port 9080
	https_port 9443
	grace_period 1ns
	skip_install_trust
	` + extra + `
}
`
}

// relaxedThrottle turns off the send caps that would get in the way of a
// test making several sign-ins for one user within seconds.
const relaxedThrottle = `throttle {
				per_hour 1000
				per_5m 1000
				per_ip_per_hour 1000
				per_user_per_hour 1000
				per_destination_per_hour 1000
				cooldown off
			}`

// smtpBlock is the smtp transport block for srv in the given TLS mode
// (starttls or implicit), with AUTH.
func smtpBlock(srv *smtptest.Server, mode string) string {
	port := srv.Port
	if mode == "implicit" {
		port = srv.TLSPort
	}
	return fmt.Sprintf(`smtp 127.0.0.1 %d {
				username mailer
				password mailer-secret
				tls %s
				ca_file %s
				timeout 5s
			}`, port, mode, srv.CAFile)
}

// newSMTP starts an SMTP server that requires AUTH with the credentials of
// smtpBlock.
func newSMTP(t *testing.T) *smtptest.Server {
	t.Helper()
	return smtptest.NewServer(t, smtptest.Options{Username: "mailer", Password: "mailer-secret"})
}

// aliceMFA is what a test adds to aliceSite's mfa block: top before the
// users block, email inside the email block, after behind it.
type aliceMFA struct{ top, email, after string }

// aliceSite is the Caddyfile of the usual second-factor site: basic_auth
// for alice, her address on file, codes by email through srv, state in a
// Badger store of the test's own.
func aliceSite(t *testing.T, srv *smtptest.Server, up *upstream, m aliceMFA) string {
	return site{
		basicAuth: bcryptHash(t, alicePassword),
		upstream:  up.addr(),
		mfa: `		storage badger ` + t.TempDir() + `
		secret_key ` + testSecret + `
		` + m.top + `
		users {
			alice email alice@example.com
		}
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + m.email + `
		}
		` + m.after,
	}.caddyfile()
}

// startCaddy loads a Caddyfile into the in-process Caddy (starting Caddy
// on first use) and, once per test, unloads it when the test ends, so the
// handler and its Badger store are closed before the temporary
// directories are removed.
func startCaddy(t *testing.T, caddyfile string) {
	t.Helper()
	tester := caddytest.NewTester(t)
	tester.InitServer(caddyfile, "caddyfile")
	if t.Failed() {
		t.FailNow()
	}
	registerUnload(t)
}

var unloads sync.Map // *testing.T → struct{}

func registerUnload(t *testing.T) {
	if _, loaded := unloads.LoadOrStore(t, struct{}{}); loaded {
		return
	}
	t.Cleanup(func() {
		unloads.Delete(t)
		if err := stopCaddy(); err != nil {
			t.Errorf("unloading config: %v", err)
		}
	})
}

// stopCaddy loads a config with nothing but the admin endpoint: the HTTP
// app stops and every module, the mfa store included, is cleaned up.
func stopCaddy() error {
	return load("application/json", `{"admin":{"listen":"`+adminAddr+`"}}`)
}

// loadCaddyfile loads a Caddyfile through the admin API and returns the
// error Caddy answers with, if any.
func loadCaddyfile(caddyfile string) error {
	return load("text/caddyfile", caddyfile)
}

func load(contentType, body string) error {
	req, err := http.NewRequest(http.MethodPost, "http://"+adminAddr+"/load", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return nil
}

// bcryptHash hashes a basic_auth password at the lowest cost.
func bcryptHash(t *testing.T, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// upstream is the site behind reverse_proxy: it answers with the request
// headers it received as JSON and records every request.
type upstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.requests = append(u.requests, r.Clone(r.Context()))
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"path": r.URL.RequestURI(), "headers": r.Header})
	}))
	t.Cleanup(u.Close)
	return u
}

// addr is the upstream's host:port for reverse_proxy.
func (u *upstream) addr() string { return strings.TrimPrefix(u.URL, "http://") }

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.requests)
}

func (u *upstream) last(t *testing.T) *http.Request {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.requests) == 0 {
		t.Fatal("the upstream received no request")
	}
	return u.requests[len(u.requests)-1]
}

// client is one browser or script: its own cookie jar, redirects not
// followed, optional basic auth on every request.
type client struct {
	t        *testing.T
	hc       *http.Client
	user     string
	password string
	header   http.Header // sent with every request
	base     string      // the site's URL; siteURL when empty
}

func newClient(t *testing.T) *client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &client{t: t, header: http.Header{}, hc: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *client) withBasicAuth(user, password string) *client {
	c.user, c.password = user, password
	return c
}

// response is an answer read to the end.
type response struct {
	*http.Response
	body []byte
}

func (r *response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("%s %s: status %d: decoding JSON: %v: %s", r.Request.Method, r.Request.URL, r.StatusCode, err, r.body)
	}
	return m
}

func (c *client) do(req *http.Request) *response {
	c.t.Helper()
	for k, vs := range c.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("%s %s: reading body: %v", req.Method, req.URL, err)
	}
	return &response{Response: resp, body: body}
}

func (c *client) newRequest(method, path string, body io.Reader) *http.Request {
	c.t.Helper()
	base := c.base
	if base == "" {
		base = siteURL
	}
	req, err := http.NewRequest(method, base+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	return req
}

// get requests path accepting the given media type.
func (c *client) get(path, accept string) *response {
	c.t.Helper()
	req := c.newRequest(http.MethodGet, path, nil)
	req.Header.Set("Accept", accept)
	return c.do(req)
}

// state is GET /.mfa/ as JSON.
func (c *client) state() map[string]any {
	c.t.Helper()
	r := c.get("/.mfa/", "application/json")
	return r.json(c.t)
}

// postJSON posts fields as JSON, with the flow's CSRF token unless fields
// has one.
func (c *client) postJSON(path string, fields map[string]string) *response {
	c.t.Helper()
	if _, ok := fields["csrf_token"]; !ok {
		tok, _ := c.state()["csrf_token"].(string)
		fields["csrf_token"] = tok
	}
	b, _ := json.Marshal(fields)
	req := c.newRequest(http.MethodPost, path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return c.do(req)
}

// postForm posts an HTML form the way a browser does.
func (c *client) postForm(path string, values url.Values) *response {
	c.t.Helper()
	req := c.newRequest(http.MethodPost, path, strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "text/html")
	return c.do(req)
}

// htmlForm is a form found on a page.
type htmlForm struct {
	action string
	values url.Values
}

// forms returns the POST forms of an HTML page with their hidden inputs.
func forms(t *testing.T, page []byte) []htmlForm {
	t.Helper()
	var out []htmlForm
	z := html.NewTokenizer(bytes.NewReader(page))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return out
		case html.StartTagToken, html.SelfClosingTagToken:
			tok := z.Token()
			attr := func(name string) string {
				for _, a := range tok.Attr {
					if a.Key == name {
						return a.Val
					}
				}
				return ""
			}
			switch tok.Data {
			case "form":
				out = append(out, htmlForm{action: attr("action"), values: url.Values{}})
			case "input":
				if len(out) > 0 && attr("type") == "hidden" {
					out[len(out)-1].values.Set(attr("name"), attr("value"))
				}
			}
		}
	}
}

// form returns the form posting to action, failing the test if the page
// has none.
func form(t *testing.T, page []byte, action string) htmlForm {
	t.Helper()
	for _, f := range forms(t, page) {
		if f.action == action {
			return f
		}
	}
	t.Fatalf("no form posting to %s on the page:\n%s", action, page)
	return htmlForm{}
}

// mailMessage is a received message, parsed.
type mailMessage struct {
	smtptest.Message
	header mail.Header
	text   string
	html   string
}

// parseMail parses a message and decodes its text and HTML parts.
func parseMail(t *testing.T, m smtptest.Message) mailMessage {
	t.Helper()
	d, err := mailtest.Parse(m.Data)
	if err != nil {
		t.Fatalf("%v\n%s", err, m.Data)
	}
	return mailMessage{Message: m, header: d.Header, text: d.Text, html: d.HTML}
}

var codePattern = regexp.MustCompile(`\b\d{6}\b`)

// code returns the one-time code of the text part, checking that the HTML
// part carries the same code.
func (m mailMessage) code(t *testing.T) string {
	t.Helper()
	code := codePattern.FindString(m.text)
	if code == "" {
		t.Fatalf("no code in the text part %q", m.text)
	}
	if !strings.Contains(m.html, code) {
		t.Fatalf("the HTML part does not carry the code %s:\n%s", code, m.html)
	}
	return code
}

// waitMessage waits for the n-th message (1-based) and returns it parsed.
func waitMessage(t *testing.T, srv *smtptest.Server, n int) mailMessage {
	t.Helper()
	msgs := srv.WaitMessages(n, 15*time.Second)
	if len(msgs) < n {
		t.Fatalf("the SMTP server received %d messages, want %d", len(msgs), n)
	}
	return parseMail(t, msgs[n-1])
}

// sendCode starts a second-factor sign-in for c (JSON) and returns the
// code that arrived as the n-th message of srv.
func sendCode(t *testing.T, c *client, srv *smtptest.Server, n int) string {
	t.Helper()
	r := c.postJSON("/.mfa/send", map[string]string{"method": "email"})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("send: status %d: %s", r.StatusCode, r.body)
	}
	return waitMessage(t, srv, n).code(t)
}

// verify posts a code (JSON) and returns the answer.
func verify(t *testing.T, c *client, code string) *response {
	t.Helper()
	return c.postJSON("/.mfa/verify", map[string]string{"method": "email", "code": code})
}

// signIn runs the second-factor flow in JSON to the end; the code is the
// n-th message of srv.
func signIn(t *testing.T, c *client, srv *smtptest.Server, n int) {
	t.Helper()
	code := sendCode(t, c, srv, n)
	r := verify(t, c, code)
	if r.StatusCode != http.StatusOK {
		t.Fatalf("verify: status %d: %s", r.StatusCode, r.body)
	}
	if got := r.json(t)["step"]; got != "done" {
		t.Fatalf("verify: step %v, want done: %s", got, r.body)
	}
}

// protected GETs a page behind mfa as a script (JSON) and reports whether
// the upstream answered; when it did it returns the headers the upstream
// saw.
func protected(t *testing.T, c *client, path string) (http.Header, bool) {
	t.Helper()
	r := c.get(path, "application/json")
	switch r.StatusCode {
	case http.StatusOK:
		var echo struct {
			Headers http.Header `json:"headers"`
		}
		if err := json.Unmarshal(r.body, &echo); err != nil {
			t.Fatalf("GET %s: decoding upstream answer: %v: %s", path, err, r.body)
		}
		return echo.Headers, true
	case http.StatusUnauthorized:
		return nil, false
	}
	t.Fatalf("GET %s: status %d: %s", path, r.StatusCode, r.body)
	return nil, false
}

// site describes the one site of a test config.
type site struct {
	global    string // inside the global options block
	address   string // default siteURL
	basicAuth string // bcrypt hash of alice's password; "" for no basic_auth
	mfa       string // body of the mfa block
	upstream  string // host:port of reverse_proxy
	headerUp  string // more header_up lines
}

func (s site) caddyfile() string {
	addr := s.address
	if addr == "" {
		addr = siteURL
	}
	var b strings.Builder
	b.WriteString(globalOptions(s.global))
	b.WriteString(addr + " {\n")
	if s.basicAuth != "" {
		b.WriteString("\tbasic_auth {\n\t\talice " + s.basicAuth + "\n\t}\n")
	}
	b.WriteString("\tmfa {\n" + s.mfa + "\n\t}\n")
	b.WriteString(`	reverse_proxy ` + s.upstream + ` {
		header_up X-Mfa-User {http.auth.mfa.user}
		header_up X-Mfa-Method {http.auth.mfa.method}
		header_up X-User-Id {http.auth.user.id}
		` + s.headerUp + `
	}
}
`)
	return b.String()
}

// alicePassword is alice's basic_auth password.
const alicePassword = "correct horse battery staple"
