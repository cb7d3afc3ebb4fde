package caddymfa

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
)

var updateGolden = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenClock is the fixed time of the golden recordings. It lies ahead of
// any real clock, so the store's own TTLs (real time) never expire what
// the handler (this clock) still counts as alive.
var goldenClock = time.Date(2099, time.March, 4, 5, 6, 7, 0, time.UTC)

// golden records the answers of a conversation with the handler: status,
// headers and body of each, with the random values (CSRF tokens, cookie
// values, codes, secrets, IDs) replaced by placeholders numbered in the
// order they first appear, so the recording is stable and still shows
// which answers share a value.
type golden struct {
	t       *testing.T
	entries []string          // raw, normalized by check
	names   map[string]string // value → placeholder
	counts  map[string]int
}

func newGolden(t *testing.T) *golden {
	return &golden{t: t, names: map[string]string{}, counts: map[string]int{}}
}

// name returns the placeholder of a value, giving it the next one of its
// kind the first time it is seen.
func (g *golden) name(kind, value string) string {
	if p, ok := g.names[value]; ok {
		return p
	}
	g.counts[kind]++
	p := fmt.Sprintf("<%s-%d>", kind, g.counts[kind])
	g.names[value] = p
	return p
}

// literal makes every value one placeholder of kind: a secret in its
// grouped and plain forms, a code.
func (g *golden) literal(kind string, values ...string) {
	if len(values) == 0 || values[0] == "" {
		return
	}
	p := g.name(kind, values[0])
	for _, v := range values[1:] {
		g.names[v] = p
	}
}

// goldenRules find random values by their shape and context.
var goldenRules = []struct {
	kind string
	re   *regexp.Regexp // group 1 is the value
}{
	{"csrf", regexp.MustCompile(`(?:"csrf_token":"|name="csrf_token" value=")([A-Za-z0-9_-]+)`)},
	{"png", regexp.MustCompile(`data:image/png;base64,((?:[A-Za-z0-9+/=]|&#43;)+)`)},
	{"secret", regexp.MustCompile(`secret=([A-Z2-7]+)`)},
	{"challenge", regexp.MustCompile(`"challenge_id": "([0-9a-f]+)"`)},
	{"time", regexp.MustCompile(`"time": "([^"]+)"`)},
	{"latency", regexp.MustCompile(`"latency": "?([0-9.a-zµ]+)"?`)},
	{"store", regexp.MustCompile(`"store": "([^"]+)"`)},
	{"id", regexp.MustCompile(`"id": ?"([0-9a-f]{16})"`)},
}

func (g *golden) normalize(s string) string {
	for _, rule := range goldenRules {
		s = rule.re.ReplaceAllStringFunc(s, func(m string) string {
			sub := rule.re.FindStringSubmatchIndex(m)
			v := m[sub[2]:sub[3]]
			kind := rule.kind
			if kind == "png" || kind == "time" || kind == "latency" || kind == "store" {
				return m[:sub[2]] + "<" + kind + ">" + m[sub[3]:]
			}
			return m[:sub[2]] + g.name(kind, v) + m[sub[3]:]
		})
	}
	// Literal values, longest first, so a value inside another is not
	// replaced on its own.
	values := make([]string, 0, len(g.names))
	for v := range g.names {
		values = append(values, v)
	}
	sort.Slice(values, func(i, j int) bool {
		if len(values[i]) != len(values[j]) {
			return len(values[i]) > len(values[j])
		}
		return values[i] < values[j]
	})
	for _, v := range values {
		s = wholeValue(v).ReplaceAllLiteralString(s, g.names[v])
	}
	return s
}

// wholeValue matches v where it is not part of a longer word. An edge of
// v that is not a word character (a base64url token may start or end
// with '-') needs no boundary: \b there would demand a word character
// beside it, and the token after `value="` would never match.
func wholeValue(v string) *regexp.Regexp {
	isWord := func(c byte) bool {
		return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
	}
	expr := regexp.QuoteMeta(v)
	if isWord(v[0]) {
		expr = `\b` + expr
	}
	if isWord(v[len(v)-1]) {
		expr += `\b`
	}
	return regexp.MustCompile(expr)
}

// record writes one exchange: the request line, the status, the headers
// (cookie values replaced) and the body.
func (g *golden) record(label, method, target string, status int, hdr http.Header, body []byte) {
	var out strings.Builder
	fmt.Fprintf(&out, "### %s\n%s %s\n%d\n", label, method, target, status)
	keys := make([]string, 0, len(hdr))
	for k := range hdr {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range hdr[k] {
			if k == "Set-Cookie" {
				if name, rest, ok := strings.Cut(v, "="); ok {
					value, attrs, _ := strings.Cut(rest, ";")
					if value != "" {
						value = g.name(strings.TrimPrefix(name, hostPrefix), value)
					}
					v = name + "=" + value + ";" + attrs
				}
			}
			fmt.Fprintf(&out, "%s: %s\n", k, v)
		}
	}
	fmt.Fprintf(&out, "\n%s\n", body)
	g.entries = append(g.entries, out.String())
}

// do runs a request from browser b and records its answer.
func (g *golden) do(b *browser, label string, rq request) (*http.Response, []byte) {
	g.t.Helper()
	resp := b.do(rq)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	method := rq.method
	if method == "" {
		method = http.MethodGet
		if rq.form != nil || rq.json != nil {
			method = http.MethodPost
		}
	}
	g.record(label, method, rq.target, resp.StatusCode, resp.Header, body)
	return resp, body
}

// jsonDo is do for a JSON request; it returns the decoded answer.
func (g *golden) jsonDo(b *browser, label string, rq request) map[string]any {
	g.t.Helper()
	if rq.header == nil {
		rq.header = http.Header{}
	}
	rq.header.Set("Accept", "application/json")
	resp, body := g.do(b, label, rq)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		g.t.Fatalf("%s: status %d: not JSON: %s", label, resp.StatusCode, body)
	}
	return m
}

// admin runs one admin API request and records its answer.
func (g *golden) admin(e *env, label, method, path string, body any) []byte {
	g.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	target := path + sep + "site=" + url.QueryEscape(storeLocation(e.h.store))
	r := httptest.NewRequest(method, "http://localhost:2019"+target, rd)
	w := httptest.NewRecorder()
	if err := new(AdminAPI).serve(w, r); err != nil {
		ae, ok := err.(caddy.APIError)
		if !ok {
			g.t.Fatalf("%s: %v", label, err)
		}
		g.record(label, method, path, ae.HTTPStatus, nil, []byte(ae.Message))
		return nil
	}
	out := w.Body.Bytes()
	g.record(label, method, path, w.Code, w.Header(), out)
	return out
}

// check compares the recording with testdata/golden/<name>.txt, or
// writes it there with -update.
func (g *golden) check(name string) {
	g.t.Helper()
	path := filepath.Join("testdata", "golden", name+".txt")
	var all strings.Builder
	for _, e := range g.entries {
		all.WriteString(g.normalize(e))
	}
	got := all.String()
	if *updateGolden {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			g.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		g.t.Fatalf("%v (run go test -run TestGolden -update to record)", err)
	}
	if got != string(want) {
		gl, wl := strings.Split(got, "\n"), strings.Split(string(want), "\n")
		for i := range min(len(gl), len(wl)) {
			if gl[i] != wl[i] {
				g.t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s", path, i+1, gl[i], wl[i])
			}
		}
		g.t.Fatalf("%s differs in length: got %d lines, want %d", path, len(gl), len(wl))
	}
}

// goldenEnv is newEnv on the fixed clock.
func goldenEnv(t *testing.T, h *Handler, outbox string) *env {
	e := newEnv(t, h, outbox)
	e.clock.set(goldenClock)
	return e
}

var jsonAccept = http.Header{"Accept": {"application/json"}}

func htmlAccept() http.Header { return http.Header{"Accept": {"text/html"}} }

// The answers of a second-factor sign-in with an emailed code, in JSON:
// the protected page refused, the choose step, a send, a wrong and a right
// code with "remember this device", the protected page let through, the
// done step, a sign-out.
func TestGoldenSignInJSON(t *testing.T) {
	h, outbox := testConfig(t)
	h.RememberDevice = caddy.Duration(30 * 24 * time.Hour)
	e := goldenEnv(t, h, outbox)
	g := newGolden(t)
	b := e.browser("alice")

	g.do(b, "protected page, script", request{target: "/app", header: jsonAccept})
	st := g.jsonDo(b, "choose step", request{target: "/.mfa/?return=%2Fapp"})
	csrf := st["csrf_token"].(string)
	g.jsonDo(b, "send", request{target: "/.mfa/send", json: map[string]string{"method": "email", "csrf_token": csrf}})
	code := e.lastCode()
	g.literal("code", code)
	g.jsonDo(b, "verify step", request{target: "/.mfa/"})
	g.jsonDo(b, "wrong code", request{target: "/.mfa/verify", json: map[string]string{"method": "email", "code": wrongCode(code), "csrf_token": csrf}})
	g.jsonDo(b, "right code", request{target: "/.mfa/verify", json: map[string]any{"method": "email", "code": code, "csrf_token": csrf, "remember": true}})
	g.do(b, "protected page", request{target: "/app", header: jsonAccept})
	done := g.jsonDo(b, "done step", request{target: "/.mfa/"})
	g.jsonDo(b, "status", request{target: "/.mfa/status"})
	g.jsonDo(b, "sign out", request{target: "/.mfa/logout", json: map[string]string{"csrf_token": done["csrf_token"].(string)}})
	g.do(b, "protected page after sign-out", request{target: "/app", header: jsonAccept})
	g.check("signin_json")
}

// The same sign-in as a browser sees it: redirects and HTML pages, form
// posts, and the sign-out that lands on the signed-out page.
func TestGoldenSignInHTML(t *testing.T) {
	h, outbox := testConfig(t)
	e := goldenEnv(t, h, outbox)
	g := newGolden(t)
	b := e.browser("alice")

	g.do(b, "protected page", request{target: "/app?x=1", header: htmlAccept()})
	_, page := g.do(b, "choose page", request{target: "/.mfa/?return=%2Fapp%3Fx%3D1", header: htmlAccept()})
	csrf := regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindSubmatch(page)
	if csrf == nil {
		t.Fatalf("no CSRF token on the page:\n%s", page)
	}
	token := string(csrf[1])
	g.do(b, "send", request{target: "/.mfa/send", form: url.Values{"method": {"email"}, "csrf_token": {token}}, header: htmlAccept()})
	code := e.lastCode()
	g.literal("code", code)
	g.do(b, "verify page", request{target: "/.mfa/", header: htmlAccept()})
	g.do(b, "wrong code", request{target: "/.mfa/verify", form: url.Values{"method": {"email"}, "code": {wrongCode(code)}, "csrf_token": {token}}, header: htmlAccept()})
	g.do(b, "wrong code: the page it lands on", request{target: "/.mfa/", header: htmlAccept()})
	g.do(b, "wrong code: reload", request{target: "/.mfa/", header: htmlAccept()})
	g.do(b, "foreign origin", request{target: "/.mfa/verify", form: url.Values{"method": {"email"}, "code": {code}, "csrf_token": {token}}, header: http.Header{"Accept": {"text/html"}, "Origin": {"https://evil.example"}}})
	g.do(b, "right code", request{target: "/.mfa/verify", form: url.Values{"method": {"email"}, "code": {code}, "csrf_token": {token}}, header: htmlAccept()})
	g.do(b, "protected page, signed in", request{target: "/app?x=1", header: htmlAccept()})
	_, done := g.do(b, "done page", request{target: "/.mfa/?return=%2Fapp%3Fx%3D1", header: htmlAccept()})
	token = string(regexp.MustCompile(`name="csrf_token" value="([^"]+)"`).FindSubmatch(done)[1])
	g.do(b, "sign out", request{target: "/.mfa/logout", form: url.Values{"csrf_token": {token}, "return": {"/app?x=1"}}, header: htmlAccept()})
	g.do(b, "signed-out page", request{target: "/.mfa/signed-out?return=%2Fapp%3Fx%3D1", header: htmlAccept()})
	g.check("signin_html")
}

// Standalone sign-in: identify, the code sent at once, verify.
func TestGoldenStandalone(t *testing.T) {
	h, outbox := testConfig(t)
	empty := ""
	h.User = &empty
	h.AllowEmails = []string{"*@example.net"}
	e := goldenEnv(t, h, outbox)
	g := newGolden(t)
	b := e.browser("")

	st := g.jsonDo(b, "identify step", request{target: "/.mfa/?return=%2Fhome"})
	csrf := st["csrf_token"].(string)
	st = g.jsonDo(b, "identify", request{target: "/.mfa/identify", json: map[string]string{"username": "Erin@Example.net", "csrf_token": csrf}})
	waitOutbox(t, e, 1)
	code := e.lastCode()
	g.literal("code", code)
	csrf = st["csrf_token"].(string)
	g.jsonDo(b, "verify", request{target: "/.mfa/verify", json: map[string]string{"code": code, "csrf_token": csrf}})
	g.do(b, "protected page", request{target: "/home", header: htmlAccept()})

	// An unknown name gets the same answers.
	u := e.browser("")
	st = g.jsonDo(u, "unknown: identify step", request{target: "/.mfa/"})
	g.jsonDo(u, "unknown: identify", request{target: "/.mfa/identify", json: map[string]string{"username": "nobody@example.org", "csrf_token": st["csrf_token"].(string)}})
	g.do(u, "unknown: verify page", request{target: "/.mfa/", header: htmlAccept()})
	g.check("standalone")
}

// waitOutbox waits for the standalone flow's delivery, which starts after
// the answer.
func waitOutbox(t *testing.T, e *env, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(e.outboxFiles()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d messages in the outbox, want %d", len(e.outboxFiles()), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// An authenticator app: enrolled after the emailed code (JSON and the
// HTML page), a wrong and a right first code, recovery codes, a sign-in
// with the app, a replay, the settings page, a sign-in with a recovery
// code.
func TestGoldenTOTP(t *testing.T) {
	h, outbox := testConfig(t)
	h.TOTP = &totp.Config{Issuer: "Example", Enroll: totp.EnrollVerified}
	e := goldenEnv(t, h, outbox)
	g := newGolden(t)
	b := e.browser("alice")

	st := g.jsonDo(b, "choose step", request{target: "/.mfa/?return=%2Fdocs"})
	csrf := st["csrf_token"].(string)
	g.jsonDo(b, "send", request{target: "/.mfa/send", json: map[string]string{"method": "email", "csrf_token": csrf}})
	code := e.lastCode()
	g.literal("code", code)
	g.jsonDo(b, "verify", request{target: "/.mfa/verify", json: map[string]string{"method": "email", "code": code, "csrf_token": csrf}})

	page := g.jsonDo(b, "enroll page", request{target: "/.mfa/enroll/totp?return=%2Fdocs"})
	secret := page["secret"].(string)
	g.literal("secret", strings.ReplaceAll(secret, " ", ""), secret)
	g.do(b, "enroll page, HTML", request{target: "/.mfa/enroll/totp?return=%2Fdocs", header: htmlAccept()})
	first := e.code(strings.ReplaceAll(secret, " ", ""), 0)
	g.literal("totp", first)
	g.jsonDo(b, "wrong first code", request{target: "/.mfa/enroll/totp", json: map[string]string{"code": wrongCode(first), "csrf_token": page["csrf_token"].(string)}})
	done := g.jsonDo(b, "first code", request{target: "/.mfa/enroll/totp", json: map[string]string{"code": first, "return": "/docs", "csrf_token": page["csrf_token"].(string)}})
	rc := strs(done["recovery_codes"])
	for _, c := range rc {
		g.literal("recovery", c)
	}
	g.do(b, "settings page, HTML", request{target: "/.mfa/enroll/totp", header: htmlAccept()})

	e.clock.add(30 * time.Second)
	app := e.browser("alice")
	st = g.jsonDo(app, "choose step with an app", request{target: "/.mfa/"})
	csrf = st["csrf_token"].(string)
	g.jsonDo(app, "totp step", request{target: "/.mfa/?method=totp"})
	next := e.code(strings.ReplaceAll(secret, " ", ""), 0)
	g.literal("totp", next)
	g.jsonDo(app, "app code", request{target: "/.mfa/verify", json: map[string]string{"method": "totp", "code": next, "csrf_token": csrf}})
	again := e.browser("alice")
	st = g.jsonDo(again, "choose step, app last used", request{target: "/.mfa/"})
	g.jsonDo(again, "replayed app code", request{target: "/.mfa/verify", json: map[string]string{"method": "totp", "code": next, "csrf_token": st["csrf_token"].(string)}})
	g.jsonDo(again, "recovery code", request{target: "/.mfa/verify", json: map[string]string{"method": "recovery", "code": rc[0], "csrf_token": st["csrf_token"].(string)}})
	g.jsonDo(again, "settings page", request{target: "/.mfa/enroll/totp"})
	g.check("totp")
}

// An administrator's session: a user's report with failures, a lockout and
// sessions; unlock, revoke, the delivery log, a test email, an app set up
// and reset, and the errors of bad requests.
func TestGoldenAdmin(t *testing.T) {
	h, outbox := testConfig(t)
	h.TOTP = &totp.Config{Issuer: "Example", Enroll: totp.EnrollOff}
	h.Lockout = &Lockout{Failures: 2}
	h.RememberDevice = caddy.Duration(24 * time.Hour)
	e := goldenEnv(t, h, outbox)
	g := newGolden(t)

	b := e.browser("alice")
	b.postJSON("/send", map[string]string{"method": "email"}).Body.Close()
	code := e.lastCode()
	g.literal("code", code)
	b.postJSON("/verify", map[string]string{"method": "email", "code": code, "remember": "true"}).Body.Close()
	g.admin(e, "user with a session", http.MethodGet, "/mfa/users/alice", nil)

	for range 3 {
		w := e.browser("alice")
		w.postJSON("/verify", map[string]string{"method": "totp", "code": "000000"}).Body.Close()
	}
	g.admin(e, "locked user", http.MethodGet, "/mfa/users/alice", nil)
	g.admin(e, "unlock", http.MethodPost, "/mfa/users/alice/unlock", nil)
	g.admin(e, "unlocked user", http.MethodGet, "/mfa/users/alice", nil)

	e.signIn("alice")
	g.admin(e, "revoke", http.MethodPost, "/mfa/users/alice/revoke", nil)
	g.admin(e, "revoked user", http.MethodGet, "/mfa/users/alice", nil)

	g.adminEnroll(e, "/mfa/users/alice/enroll")
	g.admin(e, "enrolled user", http.MethodGet, "/mfa/users/alice", nil)
	g.admin(e, "reset unknown factor", http.MethodPost, "/mfa/users/alice/reset", map[string]string{"factor": "fax"})
	g.admin(e, "reset", http.MethodPost, "/mfa/users/alice/reset", map[string]string{"factor": "totp"})
	g.admin(e, "reset again", http.MethodPost, "/mfa/users/alice/reset", map[string]string{"factor": "totp"})
	g.admin(e, "reset user", http.MethodGet, "/mfa/users/alice", nil)
	g.admin(e, "unknown action", http.MethodPost, "/mfa/users/alice/frobnicate", nil)
	g.admin(e, "bad user name", http.MethodGet, "/mfa/users/a%01b", nil)
	g.admin(e, "wrong method", http.MethodGet, "/mfa/users/alice/unlock", nil)
	g.admin(e, "test email", http.MethodPost, "/mfa/test-email", map[string]string{"to": "ops@example.com"})
	g.admin(e, "test sms without sms", http.MethodPost, "/mfa/test-sms", map[string]string{"to": "+15551234567"})
	// The notices are queued in the background: wait for the two of
	// the enrollment and the reset, after alice's two codes.
	waitLog(t, e, "alice", 4)
	g.admin(e, "log of alice's emails", http.MethodGet, "/mfa/log?user=alice&method=email&limit=2", nil)
	g.admin(e, "bad limit", http.MethodGet, "/mfa/log?limit=0", nil)
	g.check("admin")
}

// adminEnroll runs the admin enrollment and names the secret and codes
// of its answer.
func (g *golden) adminEnroll(e *env, path string) {
	g.t.Helper()
	out := g.admin(e, "enroll", http.MethodPost, path, nil)
	var v struct {
		Secret        string   `json:"secret"`
		RecoveryCodes []string `json:"recovery_codes"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		g.t.Fatalf("enroll: %v: %s", err, out)
	}
	g.literal("secret", strings.ReplaceAll(v.Secret, " ", ""), v.Secret)
	for _, c := range v.RecoveryCodes {
		g.literal("recovery", c)
	}
}

// waitLog waits until the delivery log holds n entries of the user.
func waitLog(t *testing.T, e *env, user string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := httptest.NewRequest(http.MethodGet, "http://localhost:2019/mfa/log?user="+user+"&site="+url.QueryEscape(storeLocation(e.h.store)), nil)
		w := httptest.NewRecorder()
		if err := new(AdminAPI).serve(w, r); err != nil {
			t.Fatal(err)
		}
		var entries []map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &entries); err != nil {
			t.Fatal(err)
		}
		if len(entries) >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d log entries of %s, want %d", len(entries), user, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A sign-in by link, confirmed on another device and picked up by the
// browser that asked; and a link confirmed in that browser itself.
func TestGoldenLink(t *testing.T) {
	old := matchRand
	matchRand = &seqReader{}
	t.Cleanup(func() { matchRand = old })
	e := linkEnv(t)
	e.clock.set(goldenClock)
	g := newGolden(t)
	b := e.browser("alice")

	st := g.jsonDo(b, "choose step", request{target: "/.mfa/?return=%2Fwiki"})
	csrf := st["csrf_token"].(string)
	g.jsonDo(b, "send", request{target: "/.mfa/send", json: map[string]string{"method": "email", "csrf_token": csrf}})
	_, token := e.lastLink()
	g.literal("link", token)
	g.do(b, "waiting page", request{target: "/.mfa/", header: htmlAccept()})
	g.jsonDo(b, "status, pending", request{target: "/.mfa/status"})

	phone := e.browser("")
	g.jsonDo(phone, "landing page", request{target: "/.mfa/link"})
	g.do(phone, "landing page, HTML", request{target: "/.mfa/link", header: htmlAccept()})
	page := g.jsonDo(phone, "link page", request{target: "/.mfa/link", json: map[string]string{"token": token}})
	g.do(phone, "link page, HTML", request{target: "/.mfa/link", form: url.Values{"token": {token}}, header: htmlAccept()})
	cid, _ := linkChallenge(token)
	number := strconv.Itoa(matchOf(t, e.h.challenges, cid))
	g.jsonDo(phone, "confirm elsewhere", request{target: "/.mfa/link", json: map[string]string{"token": token, "csrf_token": page["csrf_token"].(string), "number": number}})
	g.jsonDo(phone, "confirm again", request{target: "/.mfa/link", json: map[string]string{"token": token, "csrf_token": page["csrf_token"].(string), "number": number}})
	g.jsonDo(b, "status, picked up", request{target: "/.mfa/status"})
	g.do(b, "protected page", request{target: "/wiki", header: htmlAccept()})

	// The same browser: the confirmation signs in at once.
	c := e.browser("alice")
	st = g.jsonDo(c, "second: choose step", request{target: "/.mfa/"})
	g.jsonDo(c, "second: send", request{target: "/.mfa/send", json: map[string]string{"method": "email", "csrf_token": st["csrf_token"].(string)}})
	_, token = e.lastLink()
	g.literal("link", token)
	page = g.jsonDo(c, "second: link page", request{target: "/.mfa/link", json: map[string]string{"token": token}})
	g.do(c, "second: confirm here", request{target: "/.mfa/link", form: url.Values{"token": {token}, "csrf_token": {page["csrf_token"].(string)}}, header: htmlAccept()})
	g.check("link")
}

// seqReader is a repeatable stream of bytes, for numbers that are random
// in use but must be the same in every run of a golden test.
type seqReader struct{ n byte }

func (s *seqReader) Read(b []byte) (int, error) {
	for i := range b {
		s.n += 37
		b[i] = s.n
	}
	return len(b), nil
}
