package caddymfa

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// A sign-in touches the send cooldowns only when a cooldown is set: with
// none, it makes no store call for them; with one, the used code ends
// the cooldown it started (so signing in again needs no wait).
func TestSignInCooldownCalls(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cooldown time.Duration
		want     bool
	}{
		{"cooldown off", -1, false},
		{"cooldown 30s", 30 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, outbox := testConfig(t)
			h.Email.Throttle.Cooldown = caddy.Duration(tc.cooldown)
			e := newEnv(t, h, outbox)
			ks := newCountingStore(e.h.store)
			e.h.store = ks
			e.h.wire()
			b := e.browser("alice")
			if resp := b.postJSON("/send", nil); resp.StatusCode != 200 {
				t.Fatalf("send: %d", resp.StatusCode)
			}
			if resp := b.postJSON("/verify", map[string]string{"code": e.lastCode()}); resp.StatusCode != 200 {
				t.Fatalf("verify: %d", resp.StatusCode)
			}
			var cool []string
			for _, k := range ks.takeKeys() {
				if strings.Contains(k, keyThrottle+"cool/") {
					cool = append(cool, k)
				}
			}
			if got := len(cool) > 0; got != tc.want {
				t.Fatalf("cooldown store calls %q, want some: %v", cool, tc.want)
			}
			if tc.want {
				// The cooldown ended: a new code goes out at once.
				b2 := e.browser("alice")
				if resp := b2.postJSON("/send", nil); resp.StatusCode != 200 {
					t.Errorf("send right after signing in: %d, want 200", resp.StatusCode)
				}
			}
		})
	}
}
