package totp

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// UnmarshalCaddyfile sets up TOTP from the tokens of a totp block. The
// dispenser is positioned before the "totp" token, as for any
// caddyfile.Unmarshaler; the mfa directive passes d.NewFromNextSegment().
// Syntax:
//
//	totp {
//		issuer    <text>
//		digits    6|8
//		period    <duration>
//		algorithm sha1|sha256|sha512
//		skew      0|1|2
//		enroll    verified|first_login|off
//	}
//
// A bare "totp", or an empty block, enables TOTP with the defaults. Each
// subdirective may appear once. The values are checked against the fixed
// choices and ranges while parsing; "skew 0" is written as -1, because a
// zero skew in JSON takes the default.
func (c *Config) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume "totp"
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Check(d, "mfa totp"); err != nil {
			return err
		}
		switch d.Val() {
		case "issuer":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return err
			}
			c.Issuer = v

		case "digits":
			v, err := cfargs.ChoiceArg(d, "invalid digits", "6", "8")
			if err != nil {
				return err
			}
			c.Digits, _ = strconv.Atoi(v)

		case "period":
			v, err := periodArg(d)
			if err != nil {
				return err
			}
			c.Period = v

		case "algorithm":
			v, err := cfargs.ChoiceArg(d, "unrecognized totp algorithm", "sha1", "sha256", "sha512")
			if err != nil {
				return err
			}
			c.Algorithm = v

		case "skew":
			n, err := cfargs.RangeArg(d, 0, MaxSkew)
			if err != nil {
				return err
			}
			if n == 0 {
				n = -1 // in JSON, 0 takes the default skew; negative means none
			}
			c.Skew = n

		case "enroll":
			v, err := cfargs.ChoiceArg(d, "unrecognized totp enroll policy",
				EnrollVerified, EnrollFirstLogin, EnrollOff)
			if err != nil {
				return err
			}
			c.Enroll = v

		default:
			return cfargs.Unrecognized(d, "mfa totp", "issuer", "digits", "period", "algorithm", "skew", "enroll")
		}
	}
	return nil
}

// periodArg reads exactly one period: whole seconds, from MinPeriod
// to MaxPeriod.
func periodArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	v, err := cfargs.ParseDuration(d, name, false)
	if err != nil {
		return 0, err
	}
	switch p := time.Duration(v); {
	case p < MinPeriod || p > MaxPeriod:
		return 0, d.Errf("invalid %s duration %q: must be from %s to %s", name, d.Val(), MinPeriod, MaxPeriod)
	case p%time.Second != 0:
		return 0, d.Errf("invalid %s duration %q: must be a whole number of seconds", name, d.Val())
	}
	if err := cfargs.EndLine(d, name); err != nil {
		return 0, err
	}
	return v, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Config)(nil)
