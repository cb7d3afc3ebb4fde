package integration

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"time"
)

// standaloneSite is a site without a first factor: visitors name
// themselves and any *@example.com address may sign in.
func standaloneSite(t *testing.T, global, smtp, throttle string, up *upstream) string {
	return site{
		global:   global,
		upstream: up.addr(),
		mfa: `		user ""
		storage badger ` + t.TempDir() + `
		secret_key ` + testSecret + `
		allow_emails *@example.com
		email {
			` + smtp + `
			from "Example <noreply@example.com>"
			` + throttle + `
		}`,
	}.caddyfile()
}

// identify starts a standalone sign-in for username from a fresh browser
// that claims to be behind the proxy chain xff.
func identify(t *testing.T, username, xff string) *response {
	t.Helper()
	c := newClient(t)
	if xff != "" {
		c.header.Set("X-Forwarded-For", xff)
	}
	return c.postJSON("/.mfa/identify", map[string]string{"username": username})
}

func randomIP() string {
	return fmt.Sprintf("%d.%d.%d.%d", 1+rand.IntN(222), rand.IntN(256), rand.IntN(256), 1+rand.IntN(254))
}

// TestPerIPLimitUsesClientIP (SECURITY.md F34): the per-IP send cap keys
// on Caddy's client_ip, which honours trusted_proxies. From an untrusted
// peer, random X-Forwarded-For values are ignored: one socket is one
// client and gets 10 sends an hour, whatever it claims. From a trusted
// proxy, each forwarded client has its own budget.
func TestPerIPLimitUsesClientIP(t *testing.T) {
	// Only the per-IP cap (the default 10) can trigger: every request
	// names another user, and the other caps are out of reach.
	const throttle = `throttle {
				per_hour 1000
				per_5m 1000
				per_ip_per_hour 10
				per_user_per_hour off
				per_destination_per_hour off
				cooldown off
			}`

	t.Run("untrusted_peer", func(t *testing.T) {
		srv := newSMTP(t)
		up := newUpstream(t)
		startCaddy(t, standaloneSite(t, `servers {
		trusted_proxies static 10.0.0.0/8
	}`, smtpBlock(srv, "starttls"), throttle, up))

		const requests = 40
		for i := range requests {
			xff := randomIP() + ", 10.1.2.3"
			if i%3 == 0 {
				xff = "10.0.0." + strconv.Itoa(1+i) // a "trusted" address, claimed
			}
			r := identify(t, fmt.Sprintf("user%d@example.com", i), xff)
			if i < 10 {
				if r.StatusCode != http.StatusOK {
					t.Fatalf("send %d: status %d, want 200: %s", i+1, r.StatusCode, r.body)
				}
				continue
			}
			if r.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("send %d with X-Forwarded-For %s: status %d, want 429: %s", i+1, xff, r.StatusCode, r.body)
			}
			checkRetryAfter(t, r)
			if st := r.json(t); st["error"] != "throttled" {
				t.Fatalf("send %d: error %v, want throttled", i+1, st["error"])
			}
		}
		if msgs := srv.WaitMessages(10, 10*time.Second); len(msgs) != 10 {
			t.Errorf("the SMTP server received %d messages, want 10", len(msgs))
		}
	})

	t.Run("trusted_proxy", func(t *testing.T) {
		srv := newSMTP(t)
		up := newUpstream(t)
		startCaddy(t, standaloneSite(t, `servers {
		trusted_proxies static 127.0.0.1/32 ::1/128
	}`, smtpBlock(srv, "starttls"), throttle, up))

		// Fifteen forwarded clients: each has its own budget.
		for i := range 15 {
			r := identify(t, fmt.Sprintf("user%d@example.com", i), fmt.Sprintf("198.51.100.%d", 1+i))
			if r.StatusCode != http.StatusOK {
				t.Fatalf("client %d: status %d, want 200: %s", i+1, r.StatusCode, r.body)
			}
		}
		// One forwarded client: ten sends, then 429.
		for i := range 11 {
			r := identify(t, fmt.Sprintf("other%d@example.com", i), "203.0.113.7")
			want := http.StatusOK
			if i == 10 {
				want = http.StatusTooManyRequests
			}
			if r.StatusCode != want {
				t.Fatalf("send %d from 203.0.113.7: status %d, want %d: %s", i+1, r.StatusCode, want, r.body)
			}
			if want == http.StatusTooManyRequests {
				checkRetryAfter(t, r)
			}
		}
	})
}

// checkRetryAfter checks a 429 says when to come back, within the hour
// window.
func checkRetryAfter(t *testing.T, r *response) {
	t.Helper()
	s, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || s < 1 || s > 3600 {
		t.Fatalf("Retry-After %q, want 1..3600 seconds", r.Header.Get("Retry-After"))
	}
}
