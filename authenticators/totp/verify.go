package totp

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"

	"github.com/caddymfa/caddy-mfa/authenticators"
)

// ErrInvalidSecret is returned when a stored secret is not valid base32.
var ErrInvalidSecret = errors.New("totp: invalid secret")

// NoStep is the last accepted step of a user who has not yet used a code.
const NoStep int64 = -1

// Step returns the time step t falls in: the number of whole periods since
// the Unix epoch. Times before the epoch give a negative step.
func (c *Config) Step(t time.Time) int64 {
	p := int64(time.Duration(c.Period) / time.Second)
	if p <= 0 {
		p = int64(DefaultPeriod / time.Second)
	}
	u := t.Unix()
	if u < 0 {
		return (u - p + 1) / p
	}
	return u / p
}

// Verify checks a code typed by a user against secret (base32, as made
// by NewSecret) at time now. It accepts the code of the current time step
// or of up to Skew steps before or after it, provided that step is later
// than lastStep, the step of the last code accepted for this user (NoStep
// if none). On success it returns the matched step, which the caller must
// store as the new lastStep in one atomic compare-and-set, so that two
// concurrent submissions of one code cannot both succeed.
//
// The input is normalised with authenticators.NormalizeCode: ASCII digits,
// with spaces and dashes between them allowed; anything else (signs,
// non-ASCII digits, control characters, the wrong length) is refused.
// Every step in the window is computed and compared in constant time,
// whether or not an earlier one matched.
//
// A non-nil error means the configuration or the secret is unusable, not
// that the code is wrong; ok is then false.
func (c *Config) Verify(secret string, now time.Time, code string, lastStep int64) (step int64, ok bool, err error) {
	if err := c.Validate(); err != nil {
		return 0, false, err
	}
	opts := c.hotpOpts()
	secret, err = canonicalSecret(secret)
	if err != nil {
		return 0, false, err
	}
	input, valid := authenticators.NormalizeCode(code, c.Digits)
	current := c.Step(now)
	step = NoStep
	for s := current - int64(c.Skew); s <= current+int64(c.Skew); s++ {
		if s < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(s), opts)
		if err != nil {
			return 0, false, fmt.Errorf("%w: %w", ErrInvalidSecret, err)
		}
		match := subtle.ConstantTimeCompare([]byte(want), []byte(input)) == 1
		if valid && match && s > lastStep && step == NoStep {
			step = s
		}
	}
	if step == NoStep {
		return 0, false, nil
	}
	return step, true, nil
}

// code returns the code of time step s; the tests use it to check the
// generator against the RFC vectors.
func (c *Config) code(secret string, s uint64) (string, error) {
	return hotp.GenerateCodeCustom(secret, s, c.hotpOpts())
}

// hotpOpts are the pquerna/otp options matching c.
func (c *Config) hotpOpts() hotp.ValidateOpts {
	return hotp.ValidateOpts{
		Digits:    otpDigits(c.Digits),
		Algorithm: algorithms[c.Algorithm],
	}
}

// otpDigits maps a configured length to pquerna/otp digits.
func otpDigits(n int) otp.Digits {
	if n == 8 {
		return otp.DigitsEight
	}
	return otp.DigitsSix
}
