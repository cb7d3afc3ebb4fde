package caddymfa

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/internal/geoiptest"
)

// page asks for a protected page as a browser from ip and returns the
// status and the method the upstream saw ("" when it was not reached).
func (b *browser) page(ip string) (int, string) {
	b.e.t.Helper()
	before := len(b.e.replVals)
	resp := b.do(request{target: "/app", ip: ip, header: http.Header{"Accept": {"text/html"}}})
	resp.Body.Close()
	if len(b.e.replVals) == before {
		return resp.StatusCode, ""
	}
	return resp.StatusCode, b.e.replVals[len(b.e.replVals)-1]["mfa.method"]
}

// signInFrom runs an emailed-code sign-in from ip, asking to remember the
// device when remember is set.
func (e *env) signInFrom(user, ip string, remember bool) *browser {
	e.t.Helper()
	b := e.browser(user)
	b.ip = ip
	b.postJSON("/send", map[string]string{"method": "email"})
	fields := map[string]string{"method": "email", "code": e.lastCode()}
	if remember {
		fields["remember"] = "true"
	}
	body := b.postJSON("/verify", fields)
	if body.StatusCode != http.StatusOK {
		e.t.Fatalf("sign-in from %s: %d", ip, body.StatusCode)
	}
	return b
}

func TestTrustedNetworksAndPolicyNever(t *testing.T) {
	t.Run("trusted_networks", func(t *testing.T) {
		h, outbox := testConfig(t)
		h.TrustedNetworks = []string{"192.0.2.0/24", "private_ranges"}
		e := newEnv(t, h, outbox)
		for ip, want := range map[string]string{"192.0.2.77": "trusted_network", "10.1.2.3": "trusted_network", "::ffff:192.0.2.8": "trusted_network", "203.0.113.9": ""} {
			status, method := e.browser("alice").page(ip)
			if method != want {
				t.Errorf("from %s: status %d, method %q, want %q", ip, status, method, want)
			}
		}
	})
	t.Run("never", func(t *testing.T) {
		h, outbox := testConfig(t)
		h.Policy = "never"
		e := newEnv(t, h, outbox)
		if _, method := e.browser("alice").page("203.0.113.9"); method != "policy_never" {
			t.Errorf("policy never: method %q", method)
		}
		// The first factor is still required.
		resp := e.serve(request{target: "/app"}, nil)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("policy never without a first factor: %d", resp.StatusCode)
		}
	})
}

func TestPolicyNewIP(t *testing.T) {
	h, outbox := testConfig(t)
	h.Policy = "new_ip"
	e := newEnv(t, h, outbox)
	if status, method := e.browser("alice").page("198.51.100.1"); method != "" || status != http.StatusFound {
		t.Fatalf("first visit: %d %q, want the challenge", status, method)
	}
	e.signInFrom("alice", "198.51.100.1", false)

	b := e.browser("alice")
	if _, method := b.page("198.51.100.1"); method != "known_ip" {
		t.Fatalf("known IP: method %q", method)
	}
	// The browser got a session: the next request is a plain session hit.
	if _, method := b.page("198.51.100.1"); method != "known_ip" || len(b.jar.Cookies(mustURL("http://app.test/"))) == 0 {
		t.Errorf("no session for the known IP")
	}
	if _, method := e.browser("alice").page("198.51.100.2"); method != "" {
		t.Errorf("new IP let through: %q", method)
	}
	if _, method := e.browser("bob").page("198.51.100.1"); method != "" {
		t.Errorf("alice's IP let bob through: %q", method)
	}
	e.clock.add(knownFor + time.Hour)
	if _, method := e.browser("alice").page("198.51.100.1"); method != "" {
		t.Errorf("an IP known %s ago still let through: %q", knownFor, method)
	}
}

func TestPolicyNewCountry(t *testing.T) {
	h, outbox := testConfig(t)
	h.Policy = "new_country"
	h.GeoIPDB = geoiptest.CountryDB(t, map[string]string{"198.51.100.0/24": "SE", "203.0.113.0/24": "US"})
	e := newEnv(t, h, outbox)
	e.signInFrom("alice", "198.51.100.1", false)
	if _, method := e.browser("alice").page("198.51.100.200"); method != "known_country" {
		t.Errorf("another address in a known country: %q", method)
	}
	if _, method := e.browser("alice").page("203.0.113.5"); method != "" {
		t.Errorf("a new country let through: %q", method)
	}
	if _, method := e.browser("alice").page("192.0.2.1"); method != "" {
		t.Errorf("an address with no country let through: %q", method)
	}
}

// SECURITY.md E31: a remembered device is a separate random token, stored
// hashed, bound to the user, expiring, and forgotten on sign-out, on a
// factor change and on lockout.
func TestRememberDevice(t *testing.T) {
	e := totpEnv(t, "", func(h *Handler) {
		h.RememberDevice = caddy.Duration(30 * 24 * time.Hour)
		h.Lockout = &Lockout{Failures: 2}
	})
	// forget drops the session cookie, as a browser restart after the
	// session's end would.
	forget := func(b *browser) {
		b.e.h.sessions.cache = newSessionCache(maxCachedSessions)
		for _, c := range b.jar.Cookies(mustURL("http://app.test/")) {
			if c.Name == b.e.h.realm.plain[cookieSession] {
				c.MaxAge = -1
				b.jar.SetCookies(mustURL("http://app.test/"), []*http.Cookie{c})
			}
		}
	}
	if st := decodeJSON(t, e.browser("alice").postJSON("/send", map[string]string{"method": "email"})); st["step"] != stepVerify || st["remember_device_days"] != 30.0 {
		t.Errorf("verify step offers %v days: %v", st["remember_device_days"], st)
	}
	e.clock.add(time.Minute)
	b := e.signInFrom("alice", "", true)
	var token string
	for _, c := range b.jar.Cookies(mustURL("http://app.test/")) {
		if c.Name == e.h.realm.plain[cookieDevice] {
			token = c.Value
		}
	}
	if token == "" {
		t.Fatal("no device cookie")
	}
	recs, _ := e.h.store.List(t.Context(), keyDevice, 0, false)
	for _, rec := range recs {
		if strings.Contains(rec.Key, token) || strings.Contains(string(rec.Value), token) {
			t.Error("the device token is stored in the clear")
		}
	}
	forget(b)
	if _, method := b.page(""); method != "remembered_device" {
		t.Fatalf("remembered device: method %q", method)
	}
	// Bound to the user.
	bob := e.browser("bob")
	bob.jar.SetCookies(mustURL("http://app.test/"), []*http.Cookie{{Name: e.h.realm.plain[cookieDevice], Value: token}})
	if _, method := bob.page(""); method != "" {
		t.Errorf("alice's device let bob through: %q", method)
	}
	// A forged token is ignored.
	forged := e.browser("alice")
	forged.jar.SetCookies(mustURL("http://app.test/"), []*http.Cookie{{Name: e.h.realm.plain[cookieDevice], Value: token[:len(token)-2] + "AA"}})
	if _, method := forged.page(""); method != "" {
		t.Errorf("forged device cookie let through: %q", method)
	}

	// The remembered device's session is no factor: it cannot add an
	// app (SECURITY.md N61).
	if resp, _ := b.enrollPage(""); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("enrollment page from a remembered device's session: %d", resp.StatusCode)
	}

	// A factor change, made with an emailed code in another browser,
	// forgets it.
	e.clock.add(time.Minute)
	c := e.signInFrom("alice", "", false)
	resp, page := c.enrollPage("")
	if resp.StatusCode != 200 {
		t.Fatalf("enrollment page: %d", resp.StatusCode)
	}
	secret := page["secret"].(string)
	c.postEnroll(map[string]string{"code": e.code(secret, 0)})
	forget(b)
	if _, method := b.page(""); method != "" {
		t.Errorf("device still remembered after adding an app: %q", method)
	}

	// Lockout forgets it.
	e.clock.add(time.Minute)
	b2 := e.browser("alice")
	b2.postJSON("/verify", map[string]string{"method": "totp", "code": e.code(secret, 0), "remember": "true"})
	forget(b2)
	if _, method := b2.page(""); method != "remembered_device" {
		t.Fatalf("second device: %q", method)
	}
	for range 3 {
		e.browser("alice").postJSON("/verify", map[string]string{"method": "totp", "code": "000000"})
	}
	forget(b2)
	if _, method := b2.page(""); method != "" {
		t.Errorf("device still remembered after the lockout: %q", method)
	}

	// Expiry.
	e.clock.add(time.Hour) // past the lockout
	b3 := e.browser("alice")
	b3.postJSON("/verify", map[string]string{"method": "totp", "code": e.code(secret, 0), "remember": "true"})
	forget(b3)
	e.clock.add(30*24*time.Hour - time.Minute)
	if _, method := b3.page(""); method != "remembered_device" {
		t.Errorf("device forgotten before remember_device: %q", method)
	}
	forget(b3)
	e.clock.add(2 * time.Minute)
	if _, method := b3.page(""); method != "" {
		t.Errorf("device remembered past remember_device: %q", method)
	}

	// Sign-out.
	b4 := e.browser("alice")
	b4.postJSON("/verify", map[string]string{"method": "totp", "code": e.code(secret, 0), "remember": "true"})
	token3 := b4.state()["csrf_token"].(string)
	b3 = b4
	b3.do(request{method: http.MethodPost, target: "/.mfa/logout", json: map[string]string{"csrf_token": token3}}).Body.Close()
	if _, method := b3.page(""); method != "" {
		t.Errorf("device still remembered after signing out: %q", method)
	}
}

func TestPolicyConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(*Handler)
		want   string
	}{
		{"unknown policy", func(h *Handler) { h.Policy = "sometimes" }, "unknown policy"},
		{"new_country without geoip_db", func(h *Handler) { h.Policy = "new_country" }, "geoip_db"},
		{"geoip_db missing", func(h *Handler) { h.Policy = "new_country"; h.GeoIPDB = "/nonexistent.mmdb" }, "geoip_db"},
		{"bad network", func(h *Handler) { h.TrustedNetworks = []string{"10.0.0.0/33"} }, "trusted_networks"},
		{"standalone never", func(h *Handler) { h.User = new(string); h.Policy = "never" }, "standalone"},
		{"standalone remember", func(h *Handler) {
			h.User = new(string)
			h.RememberDevice = caddy.Duration(time.Hour)
			h.TOTP = &totp.Config{Issuer: "X"}
		}, "standalone"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := testConfig(t)
			tt.change(h)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
			defer cancel()
			err := h.Provision(ctx)
			if err == nil {
				err = h.Validate()
			}
			_ = h.Cleanup()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
