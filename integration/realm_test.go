package integration

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// realmClient is a browser for a site under a test host name (a.test,
// b.test, ...): every connection goes to this machine, whatever the name.
func realmClient(t *testing.T, base string) *client {
	t.Helper()
	c := newClient(t)
	c.base = base
	dialer := &net.Dialer{}
	c.hc.Transport = &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
	}}
	return c.withBasicAuth("alice", alicePassword)
}

// stateAt is GET <prefix>/ as JSON.
func stateAt(c *client, prefix string) map[string]any {
	c.t.Helper()
	return c.get(prefix+"/", "application/json").json(c.t)
}

// postAt posts fields as JSON to <prefix>/<action> with the CSRF token of
// the current page, unless fields has one.
func postAt(c *client, prefix, action string, fields map[string]string) *response {
	c.t.Helper()
	if _, ok := fields["csrf_token"]; !ok {
		fields["csrf_token"], _ = stateAt(c, prefix)["csrf_token"].(string)
	}
	return c.postJSON(prefix+"/"+action, fields)
}

// sendAt asks for an emailed code at the handler under prefix and
// returns it.
func sendAt(t *testing.T, c *client, srv *smtptest.Server, prefix string) string {
	t.Helper()
	seen := len(srv.Messages())
	if r := postAt(c, prefix, "send", map[string]string{"method": "email"}); r.StatusCode != http.StatusOK {
		t.Fatalf("send at %s%s: status %d: %s", c.base, prefix, r.StatusCode, r.body)
	}
	return emailCodeAfter(t, srv, seen)
}

// signInAt signs c in with an emailed code at the handler under prefix,
// asking to remember the device when remember is set.
func signInAt(t *testing.T, c *client, srv *smtptest.Server, prefix string, remember bool) {
	t.Helper()
	fields := map[string]string{"method": "email", "code": sendAt(t, c, srv, prefix)}
	if remember {
		fields["remember"] = "true"
	}
	if r := postAt(c, prefix, "verify", fields); r.StatusCode != http.StatusOK || r.json(t)["step"] != "done" {
		t.Fatalf("verify at %s%s: status %d: %s", c.base, prefix, r.StatusCode, r.body)
	}
}

// cookie returns c's cookie for its site whose name starts with prefix.
func (c *client) cookie(prefix string) *http.Cookie {
	c.t.Helper()
	for _, ck := range c.hc.Jar.Cookies(mustParse(c.t, c.base)) {
		if strings.HasPrefix(ck.Name, prefix) {
			return ck
		}
	}
	c.t.Fatalf("%s: no %s* cookie", c.base, prefix)
	return nil
}

// realmTag is the tag of the realm of the handler under prefix at c's
// site, read from the name of the flow cookie its sign-in page sets.
func realmTag(t *testing.T, c *client, prefix string) string {
	t.Helper()
	fresh := realmClient(t, c.base)
	stateAt(fresh, prefix)
	return strings.TrimPrefix(fresh.cookie("mfa_flow-").Name, "mfa_flow-")
}

// plant puts cookies, under the given names, into c's jar for its site.
func plant(c *client, values map[string]string) {
	var cks []*http.Cookie
	for name, v := range values {
		cks = append(cks, &http.Cookie{Name: name, Value: v, Path: "/"})
	}
	c.hc.Jar.SetCookies(mustParse(c.t, c.base), cks)
}

// realmSites are sites on one store: a.test and b.test, a.test on a
// second port, and c.test with two routes, each with its own mfa handler
// and default realm.
func realmSites(t *testing.T, srv *smtptest.Server, up *upstream) string {
	t.Helper()
	store := t.TempDir()
	hash := bcryptHash(t, alicePassword)
	mfa := func(extra string) string {
		return `mfa {
			storage badger ` + store + `
			secret_key ` + testSecret + `
			remember_device 30d
			users {
				alice email alice@example.com
			}
			email {
				` + smtpBlock(srv, "starttls") + `
				from "Example <noreply@example.com>"
				` + relaxedThrottle + `
			}
			` + extra + `
		}
		reverse_proxy ` + up.addr() + ` {
			header_up X-Mfa-User {http.auth.mfa.user}
			header_up X-Mfa-Method {http.auth.mfa.method}
		}`
	}
	auth := "basic_auth {\n\t\talice " + hash + "\n\t}\n"
	var b strings.Builder
	b.WriteString(globalOptions(""))
	for _, addr := range []string{"http://a.test:9080", "http://b.test:9080", "http://a.test:9081"} {
		b.WriteString(addr + " {\n\t" + auth + "\t" + mfa("") + "\n}\n")
	}
	b.WriteString("http://c.test:9080 {\n\t" + auth +
		"\troute /one/* {\n\t\t" + mfa("path_prefix /one/.mfa") + "\n\t}\n" +
		"\troute /two/* {\n\t\t" + mfa("path_prefix /two/.mfa") + "\n\t}\n}\n")
	return b.String()
}

// TestRealmsKeepHandlersApart (SECURITY.md K49): two sites, one host on
// two ports, and two routes of one site, all mfa handlers on one store
// with one secret key. A session, a sign-in flow with its code, and a
// remembered device made by one handler are refused by every other, also
// when their values are planted under the other handler's cookie names;
// two handlers of one host keep their sessions side by side.
func TestRealmsKeepHandlersApart(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, realmSites(t, srv, up))

	a := realmClient(t, "http://a.test:9080")
	signInAt(t, a, srv, "/.mfa", true)
	if h, ok := protected(t, a, "/page"); !ok || h.Get("X-Mfa-User") != "alice" {
		t.Fatalf("a.test: the session made there does not reach the upstream")
	}
	session, device := a.cookie("mfa_session-"), a.cookie("mfa_device-")

	// Another site on the same store: neither the session nor the device,
	// under their own names or under b.test's.
	b := realmClient(t, "http://b.test:9080")
	tagB := realmTag(t, b, "/.mfa")
	if tagB == strings.TrimPrefix(session.Name, "mfa_session-") {
		t.Fatal("a.test and b.test share a realm")
	}
	plant(b, map[string]string{
		session.Name: session.Value, device.Name: device.Value,
		"mfa_session-" + tagB: session.Value, "mfa_device-" + tagB: device.Value,
	})
	if _, ok := protected(t, b, "/page"); ok {
		t.Fatal("b.test accepted the session or the remembered device of a.test")
	}
	// The device alone still works where it was remembered.
	home := realmClient(t, "http://a.test:9080")
	plant(home, map[string]string{device.Name: device.Value})
	if h, ok := protected(t, home, "/page"); !ok || h.Get("X-Mfa-Method") != "remembered_device" {
		t.Fatalf("a.test: the remembered device was not recognised where it was made")
	}

	// The same host on another port: the browser sends a.test's cookies
	// there too.
	a2 := realmClient(t, "http://a.test:9081")
	a2.hc.Jar = a.hc.Jar
	tag2 := realmTag(t, a2, "/.mfa")
	plant(a2, map[string]string{"mfa_session-" + tag2: session.Value, "mfa_device-" + tag2: device.Value})
	if _, ok := protected(t, a2, "/page"); ok {
		t.Fatal("a.test:9081 accepted the session or the device of a.test:9080")
	}

	// A flow started at a.test, finished at b.test with a.test's code and
	// CSRF token: refused, and the code is neither compared nor used up.
	start := realmClient(t, "http://a.test:9080")
	code := sendAt(t, start, srv, "/.mfa")
	flow := start.cookie("mfa_flow-")
	csrf, _ := stateAt(start, "/.mfa")["csrf_token"].(string)
	finish := realmClient(t, "http://b.test:9080")
	plant(finish, map[string]string{flow.Name: flow.Value, "mfa_flow-" + tagB: flow.Value})
	r := finish.postJSON("/.mfa/verify", map[string]string{"method": "email", "code": code, "csrf_token": csrf})
	if r.StatusCode == http.StatusOK {
		t.Fatalf("b.test finished a.test's flow: %s", r.body)
	}
	r = postAt(finish, "/.mfa", "verify", map[string]string{"method": "email", "code": code})
	if r.StatusCode != http.StatusUnauthorized || r.json(t)["error"] != "invalid_code" {
		t.Fatalf("a.test's code in a flow of b.test: status %d: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, finish, "/page"); ok {
		t.Fatal("b.test let the flow of a.test through")
	}
	r = start.postJSON("/.mfa/verify", map[string]string{"method": "email", "code": code, "csrf_token": csrf})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("a.test: its own code, after b.test saw it: status %d: %s", r.StatusCode, r.body)
	}

	// Two routes of one site: one route's session does not open the
	// other, and signing in at both keeps both.
	c := realmClient(t, "http://c.test:9080")
	signInAt(t, c, srv, "/one/.mfa", false)
	if _, ok := protected(t, c, "/one/x"); !ok {
		t.Fatal("c.test/one: its own session refused")
	}
	one := c.cookie("mfa_session-")
	tagTwo := realmTag(t, c, "/two/.mfa")
	if "mfa_session-"+tagTwo == one.Name {
		t.Fatal("the two routes of c.test share a realm")
	}
	if _, ok := protected(t, c, "/two/x"); ok {
		t.Fatal("c.test/two accepted the session of /one")
	}
	forged := realmClient(t, "http://c.test:9080")
	plant(forged, map[string]string{"mfa_session-" + tagTwo: one.Value})
	if _, ok := protected(t, forged, "/two/x"); ok {
		t.Fatal("c.test/two accepted /one's session under its own cookie name")
	}
	signInAt(t, c, srv, "/two/.mfa", false)
	for _, p := range []string{"/one/x", "/two/x"} {
		if _, ok := protected(t, c, p); !ok {
			t.Errorf("c.test%s: refused after signing in at both routes", p)
		}
	}
}

// standaloneUsers is the mfa block of a standalone site with the given
// users block body and allow_emails patterns.
func standaloneUsers(t *testing.T, srv *smtptest.Server, up *upstream, store, users, allow string) string {
	t.Helper()
	mfa := `user ""
		storage badger ` + store + `
		secret_key ` + testSecret + `
		users {
			` + users + `
		}
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
		}`
	if allow != "" {
		mfa += "\n\t\tallow_emails " + allow
	}
	return site{upstream: up.addr(), mfa: mfa}.caddyfile()
}

// identifyAndVerify signs a new standalone browser in as name.
func identifyAndVerify(t *testing.T, srv *smtptest.Server, name string) *client {
	t.Helper()
	c := newClient(t)
	seen := len(srv.Messages())
	if r := c.postJSON("/.mfa/identify", map[string]string{"username": name}); r.StatusCode != http.StatusOK {
		t.Fatalf("identify %s: status %d: %s", name, r.StatusCode, r.body)
	}
	if r := verify(t, c, emailCodeAfter(t, srv, seen)); r.StatusCode != http.StatusOK {
		t.Fatalf("verify %s: status %d: %s", name, r.StatusCode, r.body)
	}
	return c
}

// TestReloadEndsAccess (SECURITY.md K50): reloading or restarting with the
// same config signs nobody out; a reload that removes a user, disables
// one, or drops the allow_emails pattern that let one in ends their
// access at the next request, while the others keep theirs.
func TestReloadEndsAccess(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	store := t.TempDir()
	const everyone = `alice email alice@example.com
			bob email bob@example.com
			carol email carol@example.com`
	cfg := standaloneUsers(t, srv, up, store, everyone, "*@example.net")
	startCaddy(t, cfg)
	users := map[string]*client{}
	for _, name := range []string{"alice", "bob", "carol", "erin@example.net"} {
		users[name] = identifyAndVerify(t, srv, name)
	}
	all := func(when string, want map[string]bool) {
		t.Helper()
		for name, c := range users {
			if _, ok := protected(t, c, "/page"); ok != want[name] {
				t.Errorf("%s: %s reaches the upstream: %v, want %v", when, name, ok, want[name])
			}
		}
	}
	everybody := map[string]bool{"alice": true, "bob": true, "carol": true, "erin@example.net": true}
	all("signed in", everybody)

	if err := loadCaddyfile(cfg); err != nil {
		t.Fatal(err)
	}
	all("after reloading the same config", everybody)
	if err := stopCaddy(); err != nil {
		t.Fatal(err)
	}
	if err := loadCaddyfile(cfg); err != nil {
		t.Fatal(err)
	}
	all("after a restart with the same config", everybody)

	// The same names: alice removed, bob disabled, erin's pattern gone.
	if err := loadCaddyfile(standaloneUsers(t, srv, up, store, `bob email bob@example.com disabled
			carol email carol@example.com`, "")); err != nil {
		t.Fatal(err)
	}
	all("after the reload", map[string]bool{"carol": true})
	// A browser is sent to sign in again, not through.
	if r := users["alice"].get("/page", "text/html"); r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "/.mfa/") {
		t.Errorf("removed user: status %d, Location %q", r.StatusCode, r.Header.Get("Location"))
	}
}

// stepUpSite is a second-factor site whose /admin/* accepts only an app
// code no older than 10m, or with another maxAge any factor no older than
// that; both handlers are of one realm and share their sign-in pages.
func stepUpSite(t *testing.T, srv *smtptest.Server, up *upstream, maxAge string) string {
	t.Helper()
	gate := "methods totp\n\t\t\tmax_age " + maxAge
	if maxAge != "10m" {
		gate = "max_age " + maxAge
	}
	common := `realm app
		storage badger ` + t.TempDir() + `
		secret_key ` + testSecret + `
		users {
			alice email alice@example.com
		}
		totp {
			issuer Example
		}
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
		}`
	proxy := `reverse_proxy ` + up.addr() + ` {
			header_up X-Mfa-User {http.auth.mfa.user}
			header_up X-Mfa-Method {http.auth.mfa.method}
		}`
	return globalOptions("") + `http://localhost:9080 {
	basic_auth {
		alice ` + bcryptHash(t, alicePassword) + `
	}
	handle /admin/* {
		mfa {
			` + common + `
			` + gate + `
		}
		` + proxy + `
	}
	handle {
		mfa {
			` + common + `
		}
		` + proxy + `
	}
}
`
}

// TestStepUpToTOTP (SECURITY.md K50): a session made with an emailed code
// opens the site but not /admin/*, which accepts app codes only: a
// browser is led into the app-code challenge and back to the page it
// asked for; a script gets 401 step_up_required with the accepted
// methods. After stepping up, both parts are open.
func TestStepUpToTOTP(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, stepUpSite(t, srv, up, "10m"))
	c := newClient(t).withBasicAuth("alice", alicePassword)
	secret := enrollApp(t, c, srv)

	// A new browser, signed in by email.
	b := newClient(t).withBasicAuth("alice", alicePassword)
	signInAt(t, b, srv, "/.mfa", false)
	if _, ok := protected(t, b, "/docs"); !ok {
		t.Fatal("the emailed-code session does not open the site")
	}
	const target = "/admin/users?page=2"
	r := b.get(target, "application/json")
	if m := r.json(t); r.StatusCode != http.StatusUnauthorized || m["error"] != "step_up_required" || !sameList(m["methods"], "totp") {
		t.Fatalf("GET %s as a script: status %d: %s", target, r.StatusCode, r.body)
	}
	r = b.get(target, "text/html")
	loc := r.Header.Get("Location")
	if r.StatusCode != http.StatusFound || !strings.HasPrefix(loc, "/.mfa/?return="+url.QueryEscape(target)) || !strings.Contains(loc, "step_up=totp") {
		t.Fatalf("GET %s: status %d, Location %q; want the step-up challenge", target, r.StatusCode, loc)
	}
	// The challenge is the app code's, not a dead end and not the email.
	v := b.get(loc, "application/json").view(t, http.StatusOK)
	if v.Step != "verify" || v.Method != "totp" {
		t.Fatalf("step-up page: step %q, method %q, want verify totp", v.Step, v.Method)
	}
	if r := b.postJSON("/.mfa/send", map[string]string{"method": "email", "csrf_token": v.CSRFToken}); r.StatusCode == http.StatusOK {
		t.Fatal("the step-up flow sent an emailed code")
	}
	r = b.postJSON("/.mfa/verify", map[string]string{"method": "totp", "code": totpref.Code(secret, time.Now(), 1), "csrf_token": v.CSRFToken})
	if v := r.view(t, http.StatusOK); v.Step != "done" || v.Redirect != target {
		t.Fatalf("step-up: step %q, redirect %q, want done and %s", v.Step, v.Redirect, target)
	}
	for _, p := range []string{target, "/docs"} {
		if h, ok := protected(t, b, p); !ok || h.Get("X-Mfa-Method") != "totp" {
			t.Errorf("after the step-up, %s: reached %v, method %q", p, ok, h.Get("X-Mfa-Method"))
		}
	}
}

// enrollApp signs c in by email and sets up alice's authenticator app;
// it returns the app's secret.
func enrollApp(t *testing.T, c *client, srv *smtptest.Server) string {
	t.Helper()
	signInAt(t, c, srv, "/.mfa", false)
	page := enrollPage(t, c, "/.mfa/enroll/totp", nil)
	secret := scan(t, page, "Example", "alice")
	r := c.postJSON("/.mfa/enroll/totp", map[string]string{
		"action": "confirm", "code": totpref.Code(secret, time.Now(), 0), "csrf_token": page.view(t, http.StatusOK).CSRFToken,
	})
	if v := r.view(t, http.StatusOK); v.Step != "recovery_codes" {
		t.Fatalf("enrolling the app: step %q: %s", v.Step, r.body)
	}
	return secret
}

// sameList reports whether a JSON array holds exactly want.
func sameList(v any, want ...string) bool {
	list, _ := v.([]any)
	var got []string
	for _, x := range list {
		s, _ := x.(string)
		got = append(got, s)
	}
	return slices.Equal(got, want)
}

// TestStepUpMaxAge (SECURITY.md K50): /admin/* asks for a factor again
// once the session's last verification is older than max_age, while the
// rest of the site stays open; verifying again opens it.
func TestStepUpMaxAge(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, stepUpSite(t, srv, up, "2s"))
	b := newClient(t).withBasicAuth("alice", alicePassword)
	signInAt(t, b, srv, "/.mfa", false)
	signedIn := time.Now()
	if _, ok := protected(t, b, "/admin/x"); !ok && time.Since(signedIn) < 2*time.Second {
		t.Fatal("/admin/x refused a fresh session")
	}
	var last *response
	waitFor(t, 15*time.Second, "max_age to pass", func() bool {
		last = b.get("/admin/x", "application/json")
		return last.StatusCode == http.StatusUnauthorized
	})
	if m := last.json(t); m["error"] != "step_up_required" || !sameList(m["methods"], "totp", "email", "recovery") {
		t.Fatalf("after max_age: %s", last.body)
	}
	if _, ok := protected(t, b, "/docs"); !ok {
		t.Fatal("the site without max_age closed too")
	}
	if time.Since(signedIn) < 2*time.Second {
		t.Fatal("refused before max_age")
	}
	// The browser is led to sign in again, and back.
	r := b.get("/admin/x", "text/html")
	loc := r.Header.Get("Location")
	v := b.get(loc, "application/json").view(t, http.StatusOK)
	if v.Step != "choose" {
		t.Fatalf("step-up page: %+v", v)
	}
	seen := len(srv.Messages())
	if r := b.postJSON("/.mfa/send", map[string]string{"method": "email", "csrf_token": v.CSRFToken}); r.StatusCode != http.StatusOK {
		t.Fatalf("send: %d %s", r.StatusCode, r.body)
	}
	r = b.postJSON("/.mfa/verify", map[string]string{"method": "email", "code": emailCodeAfter(t, srv, seen), "csrf_token": v.CSRFToken})
	if v := r.view(t, http.StatusOK); v.Redirect != "/admin/x" {
		t.Fatalf("verify: %+v", v)
	}
	if _, ok := protected(t, b, "/admin/x"); !ok {
		t.Fatal("refused right after verifying again")
	}
}
