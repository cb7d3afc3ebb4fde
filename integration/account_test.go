package integration

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// User-Agent headers of the browsers of the account tests.
const (
	uaFirefoxWindows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"
	uaChromeMac      = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	uaSafariIPhone   = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
)

// accountJSON is the JSON of the account page.
type accountJSON struct {
	Step    string `json:"step"`
	User    string `json:"user"`
	Methods []struct {
		Kind        string `json:"kind"`
		Destination string `json:"destination"`
	} `json:"methods"`
	RecoveryLeft *int `json:"recovery_codes_left"`
	Sessions     []struct {
		ID         string `json:"id"`
		Current    bool   `json:"current"`
		Method     string `json:"method"`
		Browser    string `json:"browser"`
		System     string `json:"system"`
		IP         string `json:"ip"`
		Remembered bool   `json:"remembered"`
		LastSeen   string `json:"last_seen"`
	} `json:"sessions"`
	Devices []struct {
		ID      string `json:"id"`
		Current bool   `json:"current"`
		Browser string `json:"browser"`
		System  string `json:"system"`
	} `json:"devices"`
	Fresh         bool     `json:"fresh"`
	Confirm       string   `json:"confirm"`
	CSRFToken     string   `json:"csrf_token"`
	Error         string   `json:"error"`
	Message       string   `json:"message"`
	RecoveryCodes []string `json:"recovery_codes"`
	Redirect      string   `json:"redirect"`
}

func (r *response) account(t *testing.T, status int) accountJSON {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s %s: status %d, want %d: %s", r.Request.Method, r.Request.URL, r.StatusCode, status, r.body)
	}
	var v accountJSON
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("%s %s: decoding JSON: %v: %s", r.Request.Method, r.Request.URL, err, r.body)
	}
	return v
}

// accountPage is the account page of c, as JSON.
func accountPage(t *testing.T, c *client) accountJSON {
	t.Helper()
	return c.get("/.mfa/account", "application/json").account(t, http.StatusOK)
}

// accountDo posts an action of the account page as JSON, with the page's
// CSRF token.
func accountDo(t *testing.T, c *client, fields map[string]string) *response {
	t.Helper()
	if _, ok := fields["csrf_token"]; !ok {
		fields["csrf_token"] = accountPage(t, c).CSRFToken
	}
	return c.postJSON("/.mfa/account", fields)
}

// browserAs is a browser of alice (basic_auth) with a User-Agent.
func browserAs(t *testing.T, ua string) *client {
	c := newClient(t).withBasicAuth("alice", alicePassword)
	c.header.Set("User-Agent", ua)
	return c
}

// rememberedBy is a browser with the remembered-device cookie of a and
// nothing else, let through by it: its session is a policy exemption.
func rememberedBy(t *testing.T, a *client, ua string) *client {
	t.Helper()
	c := browserAs(t, ua)
	u := mustParse(t, siteURL)
	for _, ck := range a.hc.Jar.Cookies(u) {
		if strings.HasPrefix(ck.Name, "mfa_device-") {
			c.hc.Jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value}})
		}
	}
	if r := c.get("/", "text/html"); r.StatusCode != http.StatusOK {
		t.Fatalf("the remembered device did not let the browser through: %d", r.StatusCode)
	}
	return c
}

// otherSession is the id of the one session of the page that is not the
// current one, and that session's browser.
func otherSession(t *testing.T, v accountJSON, browser string) string {
	t.Helper()
	for _, s := range v.Sessions {
		if !s.Current && s.Browser == browser {
			return s.ID
		}
	}
	t.Fatalf("no other session in %s on the account page: %+v", browser, v.Sessions)
	return ""
}

// waitSubject waits for a message after the first seen whose subject
// contains subject, and returns it.
func waitSubject(t *testing.T, srv *smtptest.Server, seen int, subject string) mailMessage {
	t.Helper()
	var found mailMessage
	waitFor(t, 15*time.Second, "a message about "+subject, func() bool {
		msgs := srv.Messages()
		for i := seen; i < len(msgs); i++ {
			if m := parseMail(t, msgs[i]); strings.Contains(m.header.Get("Subject"), subject) {
				found = m
				return true
			}
		}
		return false
	})
	return found
}

// accountSite is a second-factor site for alice with email, an
// authenticator app and remembered devices.
func accountSite(t *testing.T, srv *smtptest.Server, up *upstream) string {
	return aliceSite(t, srv, up, aliceMFA{
		top:   "base_url http://localhost:9080\nremember_device 30d",
		email: relaxedThrottle,
		after: "totp {\nissuer Example\n}",
	})
}

// TestAccountPageEndsAnotherBrowser (SECURITY.md E30): alice signs in
// with two browsers; the account page of the first lists both, by
// browser and system, and ends the other one's session, which is signed
// out at its very next request while the first goes on; alice is told by
// email. The HTML page offers the same, and a browser without a session
// is sent to the sign-in, which comes back to the page.
func TestAccountPageEndsAnotherBrowser(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, accountSite(t, srv, up))

	a, b := browserAs(t, uaChromeMac), browserAs(t, uaFirefoxWindows)
	signInByCode(t, a, srv, false)
	signInByCode(t, b, srv, false)

	v := accountPage(t, a)
	if v.Step != "account" || v.User != "alice" || len(v.Sessions) != 2 || !v.Fresh {
		t.Fatalf("account page: %+v", v)
	}
	if len(v.Methods) == 0 || v.Methods[0].Kind != "email" || v.Methods[0].Destination == "alice@example.com" || !strings.Contains(v.Methods[0].Destination, "*") {
		t.Errorf("methods: %+v, want the address masked", v.Methods)
	}
	var current int
	for _, s := range v.Sessions {
		if s.Current {
			current++
			if s.Browser != "Chrome" || s.System != "macOS" {
				t.Errorf("the current session: %+v, want Chrome on macOS", s)
			}
		}
		if s.IP != "127.0.0.1" || s.Method != "email" || len(s.ID) != 16 {
			t.Errorf("session %+v: want IP 127.0.0.1, method email and a 16-character id", s)
		}
	}
	if current != 1 {
		t.Fatalf("%d current sessions, want 1: %+v", current, v.Sessions)
	}
	id := otherSession(t, v, "Firefox")
	if _, ok := protected(t, b, "/"); !ok {
		t.Fatal("the second browser is not signed in")
	}

	// The HTML page has a form ending that session.
	page := a.get("/.mfa/account", "text/html")
	if page.StatusCode != http.StatusOK || !strings.Contains(string(page.body), "Firefox on Windows") {
		t.Fatalf("account page: status %d:\n%s", page.StatusCode, page.body)
	}
	var end htmlForm
	for _, f := range forms(t, page.body) {
		if f.action == "/.mfa/account" && f.values.Get("action") == "end_session" && f.values.Get("id") == id {
			end = f
		}
	}
	if end.action == "" {
		t.Fatalf("no form ends session %s:\n%s", id, page.body)
	}
	seen := len(srv.Messages())
	r := a.postForm(end.action, end.values)
	if r.StatusCode != http.StatusOK || !strings.Contains(string(r.body), "That session was ended") {
		t.Fatalf("ending the session: status %d:\n%s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, b, "/"); ok {
		t.Fatal("the ended session still reaches the upstream")
	}
	if _, ok := protected(t, a, "/"); !ok {
		t.Fatal("the browser that ended the other session was signed out")
	}
	if v := accountPage(t, a); len(v.Sessions) != 1 || !v.Sessions[0].Current {
		t.Errorf("sessions after ending one: %+v", v.Sessions)
	}
	if m := waitSubject(t, srv, seen, "signed out of your account"); !strings.Contains(m.text, "account page") {
		t.Errorf("notice: %s", m.text)
	}

	// Ending a session that is already gone, or no session at all.
	if r := accountDo(t, a, map[string]string{"action": "end_session", "id": id}); r.account(t, http.StatusNotFound).Error != "not_found" {
		t.Errorf("ending it again: %s", r.body)
	}
	if r := accountDo(t, a, map[string]string{"action": "end_session", "id": "not-an-id"}); r.StatusCode != http.StatusBadRequest {
		t.Errorf("a malformed id: status %d: %s", r.StatusCode, r.body)
	}
	if r := accountDo(t, a, map[string]string{"action": "end_session", "id": id, "csrf_token": "forged"}); r.StatusCode != http.StatusForbidden {
		t.Errorf("a forged CSRF token: status %d: %s", r.StatusCode, r.body)
	}

	// Signed out, the page sends the browser to the sign-in, and back.
	if r := b.get("/.mfa/account", "text/html"); r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.mfa/" {
		t.Fatalf("account page without a session: status %d, Location %q", r.StatusCode, r.Header.Get("Location"))
	}
	if r := b.get("/.mfa/account", "application/json"); r.StatusCode != http.StatusUnauthorized || r.json(t)["error"] != "mfa_required" {
		t.Fatalf("account JSON without a session: status %d: %s", r.StatusCode, r.body)
	}
	seen = len(srv.Messages())
	if r := b.postJSON("/.mfa/send", map[string]string{"method": "email"}); r.StatusCode != http.StatusOK {
		t.Fatalf("send: %d %s", r.StatusCode, r.body)
	}
	r = b.postJSON("/.mfa/verify", map[string]string{"method": "email", "code": emailCodeAfter(t, srv, seen)})
	if got := r.json(t)["redirect"]; got != "/.mfa/account" && !strings.Contains(got.(string), "return=%2F.mfa%2Faccount") {
		t.Errorf("the sign-in from the account page goes on to %v, want the account page", got)
	}

	// Ending its own session signs the browser out.
	mine := ""
	for _, s := range accountPage(t, a).Sessions {
		if s.Current {
			mine = s.ID
		}
	}
	if r := accountDo(t, a, map[string]string{"action": "end_session", "id": mine}); r.StatusCode != http.StatusOK || r.json(t)["step"] != "signed_out" {
		t.Fatalf("ending the own session: status %d: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, a, "/"); ok {
		t.Fatal("the browser that ended its own session is still signed in")
	}
}

// TestAccountPageEndAllOthers: "end all others" ends every other session
// and forgets every other remembered device; the browser that asked goes
// on, and keeps its own remembered device.
func TestAccountPageEndAllOthers(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, accountSite(t, srv, up))

	a := browserAs(t, uaChromeMac)
	others := []*client{browserAs(t, uaFirefoxWindows), browserAs(t, uaSafariIPhone)}
	signInByCode(t, a, srv, true)
	for _, o := range others {
		signInByCode(t, o, srv, true)
	}
	v := accountPage(t, a)
	if len(v.Sessions) != 3 || len(v.Devices) != 3 {
		t.Fatalf("before: %d sessions and %d devices, want 3 and 3: %+v", len(v.Sessions), len(v.Devices), v)
	}
	seen := len(srv.Messages())
	after := accountDo(t, a, map[string]string{"action": "end_others"}).account(t, http.StatusOK)
	if len(after.Sessions) != 1 || !after.Sessions[0].Current || len(after.Devices) != 1 || !after.Devices[0].Current {
		t.Fatalf("after: sessions %+v, devices %+v; want only this browser's", after.Sessions, after.Devices)
	}
	for i, o := range others {
		if _, ok := protected(t, o, "/"); ok {
			t.Errorf("browser %d still reaches the upstream", i)
		}
		if st := o.state(); st["step"] != "choose" {
			t.Errorf("browser %d is not asked for a code again: %v", i, st)
		}
	}
	if _, ok := protected(t, a, "/"); !ok {
		t.Fatal("the browser that ended the others was signed out")
	}
	waitSubject(t, srv, seen, "signed out of your account")
}

// TestAccountPageForgetsRememberedDevice: a browser remembered after a
// code, whose device is ended on the account page of another browser, is
// asked for a code again at its next request: its session ends with the
// device. Ending the session of a remembered browser forgets its device
// too, or the device would sign it straight back in.
func TestAccountPageForgetsRememberedDevice(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, accountSite(t, srv, up))

	a := browserAs(t, uaChromeMac)
	signInByCode(t, a, srv, false)

	for _, action := range []string{"forget_device", "end_session"} {
		t.Run(action, func(t *testing.T) {
			b := browserAs(t, uaFirefoxWindows)
			signInByCode(t, b, srv, true)
			v := accountPage(t, a)
			if len(v.Devices) != 1 || v.Devices[0].Browser != "Firefox" || v.Devices[0].System != "Windows" {
				t.Fatalf("devices: %+v, want the one Firefox on Windows", v.Devices)
			}
			id := v.Devices[0].ID
			if action == "end_session" {
				id = otherSession(t, v, "Firefox")
				for _, s := range v.Sessions {
					if s.ID == id && !s.Remembered {
						t.Errorf("the session of the remembered browser is not marked remembered: %+v", s)
					}
				}
			}
			r := accountDo(t, a, map[string]string{"action": action, "id": id})
			if got := r.account(t, http.StatusOK); len(got.Devices) != 0 || len(got.Sessions) != 1 {
				t.Fatalf("after %s: sessions %+v, devices %+v", action, got.Sessions, got.Devices)
			}
			// No session, and the device cookie no longer skips the
			// challenge: the browser is asked for a code.
			if _, ok := protected(t, b, "/"); ok {
				t.Fatal("the browser still reaches the upstream")
			}
			if r := b.get("/", "text/html"); r.StatusCode != http.StatusFound || !strings.HasPrefix(r.Header.Get("Location"), "/.mfa/") {
				t.Fatalf("a page load: status %d, Location %q; want the sign-in", r.StatusCode, r.Header.Get("Location"))
			}
			if st := b.state(); st["step"] != "choose" {
				t.Fatalf("the browser is not asked for a code: %v", st)
			}
		})
	}
}

// TestAccountRecoveryCodes (SECURITY.md J47, N61): "make new ones" needs
// a code of the app however fresh the session, refuses a wrong one,
// refuses a session made by a remembered device even with the right
// code, and then shows new codes once, makes the old ones fail, and
// notifies the user.
func TestAccountRecoveryCodes(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, accountSite(t, srv, up))

	status, v := admin(t, http.MethodPost, "/mfa/users/alice/enroll", "")
	if status != http.StatusOK {
		t.Fatalf("admin enroll: %d %v", status, v)
	}
	enrolled := v.(map[string]any)
	secret := strings.ReplaceAll(enrolled["secret"].(string), " ", "")
	oldCodes := enrolled["recovery_codes"].([]any)

	a := browserAs(t, uaChromeMac)
	signInByCode(t, a, srv, true)
	page := accountPage(t, a)
	if page.RecoveryLeft == nil || *page.RecoveryLeft != len(oldCodes) {
		t.Fatalf("recovery codes left: %v, want %d", page.RecoveryLeft, len(oldCodes))
	}
	var hasApp bool
	for _, m := range page.Methods {
		hasApp = hasApp || m.Kind == "totp"
	}
	if !hasApp {
		t.Errorf("the app is not among the methods: %+v", page.Methods)
	}
	for name, code := range map[string]string{"no code": "", "a wrong code": otherCode(totpref.Code(secret, time.Now(), 0))} {
		r := accountDo(t, a, map[string]string{"action": "recovery_codes", "current_code": code})
		if got := r.account(t, http.StatusUnauthorized); got.Error != "invalid_code" || len(got.RecoveryCodes) != 0 {
			t.Errorf("%s: %s", name, r.body)
		}
	}

	// A session made by the remembered device passed no factor.
	exempt := rememberedBy(t, a, uaChromeMac)
	r := accountDo(t, exempt, map[string]string{"action": "recovery_codes", "current_code": totpref.Code(secret, time.Now(), 0)})
	if got := r.account(t, http.StatusForbidden); got.Error != "reauth_required" {
		t.Fatalf("a remembered device making recovery codes: %s", r.body)
	}
	other := otherSession(t, accountPage(t, exempt), "Chrome")
	if r := accountDo(t, exempt, map[string]string{"action": "end_session", "id": other}); r.account(t, http.StatusForbidden).Error != "reauth_required" {
		t.Fatalf("a remembered device ending a session: %s", r.body)
	}
	if v := accountPage(t, exempt); v.Fresh || v.Confirm != "/.mfa/account/confirm" {
		t.Errorf("the remembered device's page: fresh %v, confirm %q", v.Fresh, v.Confirm)
	}

	seen := len(srv.Messages())
	r = accountDo(t, a, map[string]string{"action": "recovery_codes", "current_code": totpref.Code(secret, time.Now(), 1)})
	var codes accountJSON
	if codes = r.account(t, http.StatusOK); codes.Step != "recovery_codes" || len(codes.RecoveryCodes) != len(oldCodes) || codes.Redirect != "/.mfa/account" {
		t.Fatalf("new recovery codes: %s", r.body)
	}
	waitSubject(t, srv, seen, "new recovery codes")
	if left := accountPage(t, a).RecoveryLeft; left == nil || *left != len(oldCodes) {
		t.Errorf("recovery codes left after making new ones: %v", left)
	}
	// An old code no longer signs in; a new one does.
	c := browserAs(t, uaFirefoxWindows)
	if r := c.postJSON("/.mfa/verify", map[string]string{"method": "recovery", "code": oldCodes[0].(string)}); r.StatusCode != http.StatusUnauthorized {
		t.Errorf("an old recovery code: status %d: %s", r.StatusCode, r.body)
	}
	if r := c.postJSON("/.mfa/verify", map[string]string{"method": "recovery", "code": codes.RecoveryCodes[0]}); r.StatusCode != http.StatusOK {
		t.Errorf("a new recovery code: status %d: %s", r.StatusCode, r.body)
	}
}

// TestAccountConfirmAgain: a session made by a remembered device passes
// a factor again from the account page and comes back to it, free to
// end sessions.
func TestAccountConfirmAgain(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, accountSite(t, srv, up))

	a := browserAs(t, uaChromeMac)
	signInByCode(t, a, srv, true)
	exempt := rememberedBy(t, a, uaFirefoxWindows)
	r := exempt.get("/.mfa/account/confirm", "text/html")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.mfa/" {
		t.Fatalf("confirm: status %d, Location %q", r.StatusCode, r.Header.Get("Location"))
	}
	if st := exempt.state(); st["step"] != "choose" {
		t.Fatalf("after confirm: %v, want the choose step despite the session", st)
	}
	seen := len(srv.Messages())
	if r := exempt.postJSON("/.mfa/send", map[string]string{"method": "email"}); r.StatusCode != http.StatusOK {
		t.Fatalf("send: %d %s", r.StatusCode, r.body)
	}
	r = exempt.postJSON("/.mfa/verify", map[string]string{"method": "email", "code": emailCodeAfter(t, srv, seen)})
	if got, _ := r.json(t)["redirect"].(string); got != "/.mfa/account" && !strings.Contains(got, url.QueryEscape("/.mfa/account")) {
		t.Fatalf("verify: redirect %q, want the account page: %s", got, r.body)
	}
	v := accountPage(t, exempt)
	if !v.Fresh {
		t.Fatalf("after passing a factor again the page is not fresh: %+v", v)
	}
	other := otherSession(t, v, "Chrome")
	if r := accountDo(t, exempt, map[string]string{"action": "end_session", "id": other}); r.StatusCode != http.StatusOK {
		t.Fatalf("ending a session after confirming: status %d: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, a, "/"); ok {
		t.Fatal("the ended browser still reaches the upstream")
	}
}

// TestAdminListsAndRevokesOneSession: the admin API and "caddy mfa
// users" list the sessions and remembered devices by a short id, never a
// cookie value; "caddy mfa revoke --session" ends that one session only,
// and a malformed or unknown id is refused (SECURITY.md N64).
func TestAdminListsAndRevokesOneSession(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, accountSite(t, srv, up))

	a, b := browserAs(t, uaChromeMac), browserAs(t, uaFirefoxWindows)
	signInByCode(t, a, srv, false)
	signInByCode(t, b, srv, true)

	out, err := mfaCLI(t, "users", "alice")
	if err != nil {
		t.Fatalf("caddy mfa users: %v: %s", err, out)
	}
	var rep struct {
		Sessions []struct {
			ID, Browser, System, IP string
			Remembered              bool
		} `json:"sessions"`
		Devices []struct{ ID, Browser string } `json:"devices"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("users output: %v: %s", err, out)
	}
	if len(rep.Sessions) != 2 || len(rep.Devices) != 1 || rep.Devices[0].Browser != "Firefox" {
		t.Fatalf("users alice: %s", out)
	}
	for _, c := range []*client{a, b} {
		for _, ck := range c.hc.Jar.Cookies(mustParse(t, siteURL)) {
			if strings.Contains(out, ck.Value) {
				t.Errorf("the users output carries the value of cookie %s", ck.Name)
			}
		}
	}
	var firefox string
	for _, s := range rep.Sessions {
		if s.Browser == "Firefox" {
			firefox = s.ID
			if !s.Remembered || s.System != "Windows" || s.IP != "127.0.0.1" {
				t.Errorf("Firefox's session: %+v", s)
			}
		}
	}

	for _, id := range []string{"", "0123", "ZZZZZZZZZZZZZZZZ"} {
		if out, err := mfaCLI(t, "revoke", "alice", "--session", id); err == nil {
			t.Errorf("revoke --session %q: no error: %s", id, out)
		}
	}
	if status, v := admin(t, http.MethodPost, "/mfa/users/alice/revoke", `{"session": "0123456789abcdef"}`); status != http.StatusNotFound {
		t.Errorf("revoking an unknown session: %d %v", status, v)
	}
	for _, c := range []*client{a, b} {
		if _, ok := protected(t, c, "/"); !ok {
			t.Fatal("a refused revoke ended a session")
		}
	}
	if out, err := mfaCLI(t, "revoke", "alice", "--session", firefox); err != nil {
		t.Fatalf("caddy mfa revoke --session: %v: %s", err, out)
	}
	if _, ok := protected(t, b, "/"); ok {
		t.Error("the revoked session (or its remembered device) still reaches the upstream")
	}
	if _, ok := protected(t, a, "/"); !ok {
		t.Error("revoking one session ended another")
	}
	status, v := admin(t, http.MethodGet, "/mfa/users/alice", "")
	if sessions := v.(map[string]any)["sessions"].([]any); status != http.StatusOK || len(sessions) != 1 {
		t.Errorf("after revoking one: %d %v", status, v)
	}
}

// TestAccountPageTwoNodesOneRedis (SECURITY.md M59): on two nodes that
// share a Redis store, a session ended on node A's account page is
// refused by node B within a second, and "end all others" on B ends the
// sessions made on A.
func TestAccountPageTwoNodesOneRedis(t *testing.T) {
	r := redistest.Start(t)
	srv, up := newSMTP(t), newUpstream(t)
	nodes := startNodes(t, 2, nodeSite{upstream: up, mfa: nodeMFA(srv, `storage redis redis://`+r.Addr)})
	a, b := nodes[0], nodes[1]

	first := newClient(t).withBasicAuth("dave", alicePassword)
	first.header.Set("User-Agent", uaChromeMac)
	second := newClient(t).withBasicAuth("dave", alicePassword)
	second.header.Set("User-Agent", uaFirefoxWindows)
	nodeSignIn(t, first.on(a), srv, "dave")
	nodeSignIn(t, second.on(b), srv, "dave")
	if _, ok := protected(t, second.on(b), "/"); !ok {
		t.Fatal("the second browser is not signed in on B")
	}
	v := accountPage(t, first.on(a))
	id := otherSession(t, v, "Firefox")
	if r := accountDo(t, first.on(a), map[string]string{"action": "end_session", "id": id}); r.StatusCode != http.StatusOK {
		t.Fatalf("ending the session on A: status %d: %s", r.StatusCode, r.body)
	}
	ended := time.Now()
	for {
		if _, ok := protected(t, second.on(b), "/"); !ok {
			break
		}
		if time.Since(ended) > 1500*time.Millisecond {
			t.Fatal("B still lets the ended session through 1.5 s later")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("B refused the session %v after it was ended on A", time.Since(ended).Round(time.Millisecond))

	third := newClient(t).withBasicAuth("dave", alicePassword)
	nodeSignIn(t, second.on(b), srv, "dave")
	nodeSignIn(t, third.on(a), srv, "dave")
	if got := accountDo(t, second.on(b), map[string]string{"action": "end_others"}).account(t, http.StatusOK); len(got.Sessions) != 1 {
		t.Fatalf("after end_others on B: %+v", got.Sessions)
	}
	time.Sleep(1100 * time.Millisecond) // sessionRecheck on A
	for name, c := range map[string]*client{"first": first, "third": third} {
		if _, ok := protected(t, c.on(a), "/"); ok {
			t.Errorf("the %s browser still reaches the upstream on A", name)
		}
	}
	if _, ok := protected(t, second.on(a), "/"); !ok {
		t.Error("the browser that ended the others is signed out on A")
	}
}
