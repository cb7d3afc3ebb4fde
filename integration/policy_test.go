package integration

import (
	"net/http"
	"strings"
	"testing"

	"github.com/caddymfa/caddy-mfa/internal/geoiptest"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// trustLocalProxy makes Caddy take the client IP from X-Forwarded-For
// when the connection comes from this machine, so a test can come from
// any address.
const trustLocalProxy = `servers {
		trusted_proxies static 127.0.0.1/32 ::1/128
	}`

// policySite is alice behind basic_auth with an emailed code and the
// given policy lines.
func policySite(t *testing.T, srv *smtptest.Server, up *upstream, policy string) string {
	return site{
		global:    trustLocalProxy,
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
			` + relaxedThrottle + `
		}
		` + policy,
	}.caddyfile()
}

// from is a client of alice coming from ip.
func from(t *testing.T, ip string) *client {
	c := newClient(t).withBasicAuth("alice", alicePassword)
	c.header.Set("X-Forwarded-For", ip)
	return c
}

// reached asks for a protected page as a script and returns the method
// the upstream saw, or "" when it was not reached.
func reached(t *testing.T, c *client) string {
	t.Helper()
	h, ok := protected(t, c, "/page")
	if !ok {
		return ""
	}
	return h.Get("X-Mfa-Method")
}

// TestPolicies runs each policy value through a real Caddy.
func TestPolicies(t *testing.T) {
	t.Run("always", func(t *testing.T) {
		srv, up := newSMTP(t), newUpstream(t)
		startCaddy(t, policySite(t, srv, up, "policy always"))
		signIn(t, from(t, "198.51.100.7"), srv, 1)
		if m := reached(t, from(t, "198.51.100.7")); m != "" {
			t.Errorf("policy always let a fresh client through: %q", m)
		}
	})
	t.Run("never", func(t *testing.T) {
		srv, up := newSMTP(t), newUpstream(t)
		startCaddy(t, policySite(t, srv, up, "policy never"))
		if m := reached(t, from(t, "203.0.113.1")); m != "policy_never" {
			t.Errorf("policy never: %q", m)
		}
		noAuth := newClient(t)
		if r := noAuth.get("/page", "application/json"); r.StatusCode != http.StatusUnauthorized {
			t.Errorf("policy never without the first factor: %d", r.StatusCode)
		}
	})
	t.Run("new_ip", func(t *testing.T) {
		srv, up := newSMTP(t), newUpstream(t)
		startCaddy(t, policySite(t, srv, up, "policy new_ip"))
		if m := reached(t, from(t, "198.51.100.7")); m != "" {
			t.Fatalf("first request: %q", m)
		}
		signIn(t, from(t, "198.51.100.7"), srv, 1)
		if m := reached(t, from(t, "198.51.100.7")); m != "known_ip" {
			t.Errorf("known address: %q", m)
		}
		if m := reached(t, from(t, "198.51.100.8")); m != "" {
			t.Errorf("new address: %q", m)
		}
	})
	t.Run("new_country", func(t *testing.T) {
		srv, up := newSMTP(t), newUpstream(t)
		db := geoiptest.CountryDB(t, map[string]string{"198.51.100.0/24": "SE", "203.0.113.0/24": "US"})
		startCaddy(t, policySite(t, srv, up, "policy new_country\n\t\tgeoip_db "+db))
		signIn(t, from(t, "198.51.100.7"), srv, 1)
		if m := reached(t, from(t, "198.51.100.99")); m != "known_country" {
			t.Errorf("another address in a known country: %q", m)
		}
		if m := reached(t, from(t, "203.0.113.5")); m != "" {
			t.Errorf("a request from a new country: %q", m)
		}
	})
}

// TestTrustedNetworks: requests from trusted_networks skip the challenge,
// others do not.
func TestTrustedNetworks(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, policySite(t, srv, up, "trusted_networks 192.0.2.0/24\n\t\ttrusted_networks private_ranges"))
	for ip, want := range map[string]string{"192.0.2.44": "trusted_network", "10.9.8.7": "trusted_network", "203.0.113.5": ""} {
		if m := reached(t, from(t, ip)); m != want {
			t.Errorf("from %s: %q, want %q", ip, m, want)
		}
	}
}

// TestRememberedDeviceAndRevoke: a remembered device skips the challenge
// from a new address until an administrator revokes it.
func TestRememberedDeviceAndRevoke(t *testing.T) {
	srv, up := newSMTP(t), newUpstream(t)
	startCaddy(t, policySite(t, srv, up, "remember_device 30d"))
	c := from(t, "198.51.100.7")
	code := sendCode(t, c, srv, 1)
	r := c.postJSON("/.mfa/verify", map[string]string{"method": "email", "code": code, "remember": "true"})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("verify: %d %s", r.StatusCode, r.body)
	}
	var device *http.Cookie
	for _, ck := range r.Cookies() {
		if strings.HasPrefix(ck.Name, "mfa_device-") {
			device = ck
		}
	}
	if device == nil || !device.HttpOnly || device.SameSite != http.SameSiteLaxMode {
		t.Fatalf("device cookie %+v", device)
	}
	// Only the device cookie, from another address.
	other := from(t, "203.0.113.5")
	other.header.Set("Cookie", device.Name+"="+device.Value)
	if m := reached(t, other); m != "remembered_device" {
		t.Fatalf("remembered device: %q", m)
	}
	if status, v := admin(t, http.MethodPost, "/mfa/users/alice/revoke", ""); status != 200 {
		t.Fatalf("revoke: %d %v", status, v)
	}
	if m := reached(t, other); m != "" {
		t.Errorf("a revoked device still skips the challenge: %q", m)
	}
}
