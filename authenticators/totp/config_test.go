package totp

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestConfigApplyDefaults(t *testing.T) {
	var c Config
	c.ApplyDefaults()
	want := Config{Digits: 6, Period: caddy.Duration(30 * time.Second), Algorithm: "sha1", Skew: 1, Enroll: "verified"}
	if c != want {
		t.Fatalf("defaults = %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}

	c = Config{Skew: -1, Algorithm: " SHA256 ", Enroll: " First_Login "}
	c.ApplyDefaults()
	if c.Skew != 0 || c.Algorithm != "sha256" || c.Enroll != EnrollFirstLogin {
		t.Fatalf("skew -1, SHA256, First_Login gave skew %d, algorithm %q, enroll %q", c.Skew, c.Algorithm, c.Enroll)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(*Config)
		wantErr string
	}{
		{"defaults", func(*Config) {}, ""},
		{"8 digits", func(c *Config) { c.Digits = 8 }, ""},
		{"sha512", func(c *Config) { c.Algorithm = "sha512" }, ""},
		{"skew 2", func(c *Config) { c.Skew = 2 }, ""},
		{"period 15s", func(c *Config) { c.Period = caddy.Duration(15 * time.Second) }, ""},
		{"period 5m", func(c *Config) { c.Period = caddy.Duration(5 * time.Minute) }, ""},
		{"skew 3", func(c *Config) { c.Skew = 3 }, "skew must be between 0 and 2"},
		{"digits 7", func(c *Config) { c.Digits = 7 }, "digits must be 6 or 8"},
		{"digits 10", func(c *Config) { c.Digits = 10 }, "digits must be 6 or 8"},
		{"period 10s", func(c *Config) { c.Period = caddy.Duration(10 * time.Second) }, "period must be between 15s and 5m0s"},
		{"period 6m", func(c *Config) { c.Period = caddy.Duration(6 * time.Minute) }, "period must be between"},
		{"period fraction", func(c *Config) { c.Period = caddy.Duration(30500 * time.Millisecond) }, "whole number of seconds"},
		{"md5", func(c *Config) { c.Algorithm = "md5" }, `unknown algorithm "md5"`},
		{"enroll off", func(c *Config) { c.Enroll = EnrollOff }, ""},
		{"enroll first_login", func(c *Config) { c.Enroll = EnrollFirstLogin }, ""},
		{"enroll always", func(c *Config) { c.Enroll = "always" }, `unknown enroll policy "always"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			c.ApplyDefaults()
			tt.modify(&c)
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("no error, want %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}
