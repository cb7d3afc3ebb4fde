package delivery

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// testChannel is a channel's configuration with the shared settings and
// one setting of its own, "note", which may be repeated.
type testChannel struct {
	send         string
	linkTTL      caddy.Duration
	limits       authenticators.Limits
	delivery     *Config
	registration *authenticators.Registration
	notes        []string
}

func (c *testChannel) unmarshal(d *caddyfile.Dispenser) error {
	s := Settings{Send: &c.send, LinkTTL: &c.linkTTL, Limits: &c.limits, Delivery: &c.delivery, Registration: &c.registration}
	return s.UnmarshalBlock(d, "test", []string{"note"}, func(d *caddyfile.Dispenser, _ cfargs.Once) (bool, error) {
		if d.Val() != "note" {
			return false, nil
		}
		v, err := cfargs.OneArg(d)
		c.notes = append(c.notes, v)
		return true, err
	})
}

func TestSettingsUnmarshalBlock(t *testing.T) {
	var c testChannel
	input := `test {
		send link
		link_ttl 5m
		code_length 8
		code_ttl 2m
		max_attempts 4
		max_sends 2
		throttle {
			per_hour off
		}
		delivery {
			retries off
		}
		registration {
			require totp
		}
		note a
		note b
	}`
	if err := c.unmarshal(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	wantLimits := authenticators.Limits{CodeLength: 8, CodeTTL: caddy.Duration(2 * time.Minute), MaxAttempts: 4, MaxSends: 2}
	throttle := c.limits.Throttle
	c.limits.Throttle = nil
	if c.send != "link" || c.linkTTL != caddy.Duration(5*time.Minute) || c.limits != wantLimits ||
		throttle == nil || *throttle != (authenticators.Throttle{PerHour: -1}) ||
		c.delivery == nil || *c.delivery != (Config{Retries: -1}) ||
		c.registration == nil || len(c.registration.Require) != 1 || strings.Join(c.notes, ",") != "a,b" {
		t.Errorf("got %+v, throttle %+v, delivery %+v, registration %+v", c, throttle, c.delivery, c.registration)
	}

	for input, wantErr := range map[string]string{
		"test extra":                            "wrong argument count",
		"test {\n max_sends 1\n max_sends 2\n}": `duplicate test subdirective "max_sends", at Testfile:3`,
		"test {\n bogus\n}":                     `unrecognized test subdirective "bogus", at Testfile:2`,
		"test {\n code_ttl 0s\n}":               `invalid code_ttl duration "0s": must be positive`,
		"test {\n note\n}":                      "wrong argument count",
	} {
		var c testChannel
		if err := c.unmarshal(caddyfile.NewTestDispenser(input)); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("%q: error %v, want one containing %q", input, err, wantErr)
		}
	}
}
