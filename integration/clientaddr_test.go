package integration

import (
	"testing"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// proxySite is policySite behind trusted_proxies, strict or not.
func proxySite(t *testing.T, srv *smtptest.Server, up *upstream, strict bool, policy string) string {
	global := trustLocalProxy
	if strict {
		global = `servers {
		trusted_proxies static 127.0.0.1/32 ::1/128
		trusted_proxies_strict
	}`
	}
	return site{
		global:    global,
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

// TestForgedForwardedForIgnored (SECURITY.md N63): behind trusted_proxies
// (the test's connection is the proxy), the client address is the
// rightmost X-Forwarded-For entry that is not a trusted proxy, the one the
// proxy appended. A leftmost entry the client wrote neither skips the
// challenge through trusted_networks nor counts as a known place for
// policy new_ip, with and without trusted_proxies_strict.
func TestForgedForwardedForIgnored(t *testing.T) {
	for _, strict := range []bool{false, true} {
		name := "trusted_proxies"
		if strict {
			name = "trusted_proxies_strict"
		}
		t.Run(name+"/trusted_networks", func(t *testing.T) {
			srv, up := newSMTP(t), newUpstream(t)
			startCaddy(t, proxySite(t, srv, up, strict, "trusted_networks 10.0.0.0/8"))
			for xff, want := range map[string]string{
				"10.9.1.1":                         "trusted_network", // the proxy saw 10.9.1.1
				"10.9.1.1, 203.0.113.5":            "",                // the client wrote 10.9.1.1
				"10.9.1.1,203.0.113.5, 127.0.0.1":  "",                // through two trusted proxies
				"203.0.113.5, 10.9.1.1, 127.0.0.1": "trusted_network",
			} {
				c := from(t, xff)
				if m := reached(t, c); m != want {
					t.Errorf("X-Forwarded-For %q: %q, want %q", xff, m, want)
				}
			}
		})
		t.Run(name+"/new_ip", func(t *testing.T) {
			srv, up := newSMTP(t), newUpstream(t)
			startCaddy(t, proxySite(t, srv, up, strict, "policy new_ip"))
			signIn(t, from(t, "198.51.100.7"), srv, 1)
			if m := reached(t, from(t, "203.0.113.9, 198.51.100.7")); m != "known_ip" {
				t.Fatalf("the known address appended by the proxy: %q", m)
			}
			if m := reached(t, from(t, "198.51.100.7, 203.0.113.5")); m != "" {
				t.Errorf("a known address written by the client let a new one through: %q", m)
			}
		})
	}
}
