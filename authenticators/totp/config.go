package totp

import (
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Defaults and bounds of the configuration.
const (
	DefaultDigits    = 6
	DefaultPeriod    = 30 * time.Second
	DefaultAlgorithm = "sha1"
	DefaultSkew      = 1

	// MaxSkew is the largest accepted skew: two steps either side of
	// the current one.
	MaxSkew = 2
	// MinPeriod and MaxPeriod bound the period.
	MinPeriod = 15 * time.Second
	MaxPeriod = 5 * time.Minute
)

// Enrollment policies: who may add an authenticator app to an account.
const (
	// EnrollVerified lets a user add an app only after passing another
	// configured factor (an emailed code) in the same sign-in.
	EnrollVerified = "verified"
	// EnrollFirstLogin trusts the first factor alone for a user who has
	// no app yet (trust on first use).
	EnrollFirstLogin = "first_login"
	// EnrollOff leaves enrollment to an administrator.
	EnrollOff = "off"
)

// Config is the TOTP configuration shared by enrollment and verification.
// The zero value, after ApplyDefaults, is what authenticator apps expect:
// six digits, 30 seconds, SHA-1.
type Config struct {
	// Issuer names the site in authenticator apps; it goes into the
	// otpauth URI as label prefix and issuer parameter. Default: empty (the
	// caller supplies one, e.g. the host of base_url).
	Issuer string `json:"issuer,omitempty"`
	// Digits is the length of a code, 6 or 8. Default: 6.
	Digits int `json:"digits,omitempty"`
	// Period is how long one code (one time step) lasts, 15s to 5m.
	// Default: 30s. Most apps ignore anything but 30s.
	Period caddy.Duration `json:"period,omitempty"`
	// Algorithm is the HMAC hash: "sha1", "sha256" or "sha512".
	// Default: "sha1". Several apps only support SHA-1.
	Algorithm string `json:"algorithm,omitempty"`
	// Skew is how many time steps before and after the current one are
	// also accepted, 0 to 2. Default: 1. A zero value takes the default;
	// use a negative value for no skew at all.
	Skew int `json:"skew,omitempty"`
	// Enroll says who may add an authenticator app: "verified" (default:
	// only after passing another configured factor, e.g. an emailed code),
	// "first_login" (the first factor alone, for a user who has no app
	// yet: trust on first use) or "off" (no self-service enrollment).
	Enroll string `json:"enroll,omitempty"`
}

// ApplyDefaults fills unset fields with their defaults. A negative Skew
// becomes 0 (no skew).
func (c *Config) ApplyDefaults() {
	if c.Digits == 0 {
		c.Digits = DefaultDigits
	}
	if c.Period == 0 {
		c.Period = caddy.Duration(DefaultPeriod)
	}
	c.Algorithm = strings.ToLower(strings.TrimSpace(c.Algorithm))
	if c.Algorithm == "" {
		c.Algorithm = DefaultAlgorithm
	}
	c.Enroll = strings.ToLower(strings.TrimSpace(c.Enroll))
	if c.Enroll == "" {
		c.Enroll = EnrollVerified
	}
	switch {
	case c.Skew == 0:
		c.Skew = DefaultSkew
	case c.Skew < 0:
		c.Skew = 0
	}
}

// Validate reports the first unsafe or unsupported setting. It expects
// ApplyDefaults to have run and does not modify c.
func (c *Config) Validate() error {
	if c.Digits != 6 && c.Digits != 8 {
		return fmt.Errorf("totp: digits must be 6 or 8, got %d", c.Digits)
	}
	if p := time.Duration(c.Period); p < MinPeriod || p > MaxPeriod {
		return fmt.Errorf("totp: period must be between %s and %s, got %s", MinPeriod, MaxPeriod, p)
	}
	if time.Duration(c.Period)%time.Second != 0 {
		return fmt.Errorf("totp: period must be a whole number of seconds, got %s", time.Duration(c.Period))
	}
	if _, ok := algorithms[c.Algorithm]; !ok {
		return fmt.Errorf("totp: unknown algorithm %q (use sha1, sha256 or sha512)", c.Algorithm)
	}
	if c.Skew < 0 || c.Skew > MaxSkew {
		return fmt.Errorf("totp: skew must be between 0 and %d steps, got %d", MaxSkew, c.Skew)
	}
	switch c.Enroll {
	case EnrollVerified, EnrollFirstLogin, EnrollOff:
	default:
		return fmt.Errorf("totp: unknown enroll policy %q (use verified, first_login or off)", c.Enroll)
	}
	return nil
}

// periodSeconds is the period in whole seconds, as otpauth URIs carry it.
func (c *Config) periodSeconds() uint64 {
	if c.Period <= 0 {
		return uint64(DefaultPeriod / time.Second)
	}
	return uint64(time.Duration(c.Period) / time.Second)
}
