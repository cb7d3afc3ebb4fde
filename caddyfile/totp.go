package caddyfile

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// unmarshalTOTP reads the totp block of the mfa directive; see Unmarshal
// for the syntax. A bare "totp", or an empty block, enables TOTP with the
// defaults.
func unmarshalTOTP(d *caddyfile.Dispenser) (*totp.Config, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	cfg := new(totp.Config)
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Check(d, "mfa totp"); err != nil {
			return nil, err
		}
		switch d.Val() {
		case "issuer":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			cfg.Issuer = v

		case "digits":
			v, err := choiceArg(d, "invalid digits", "6", "8")
			if err != nil {
				return nil, err
			}
			cfg.Digits, _ = strconv.Atoi(v)

		case "period":
			v, err := periodArg(d)
			if err != nil {
				return nil, err
			}
			cfg.Period = v

		case "algorithm":
			v, err := choiceArg(d, "unrecognized totp algorithm", "sha1", "sha256", "sha512")
			if err != nil {
				return nil, err
			}
			cfg.Algorithm = v

		case "skew":
			n, err := rangeArg(d, 0, totp.MaxSkew)
			if err != nil {
				return nil, err
			}
			if n == 0 {
				n = -1 // in JSON, 0 takes the default skew; negative means none
			}
			cfg.Skew = n

		case "enroll":
			v, err := choiceArg(d, "unrecognized totp enroll policy",
				totp.EnrollVerified, totp.EnrollFirstLogin, totp.EnrollOff)
			if err != nil {
				return nil, err
			}
			cfg.Enroll = v

		default:
			return nil, d.Errf("unrecognized mfa totp subdirective %q", d.Val())
		}
	}
	return cfg, nil
}

// periodArg reads exactly one period: whole seconds, from totp.MinPeriod
// to totp.MaxPeriod.
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
	case p < totp.MinPeriod || p > totp.MaxPeriod:
		return 0, d.Errf("invalid %s duration %q: must be from %s to %s", name, d.Val(), totp.MinPeriod, totp.MaxPeriod)
	case p%time.Second != 0:
		return 0, d.Errf("invalid %s duration %q: must be a whole number of seconds", name, d.Val())
	}
	if err := cfargs.EndLine(d, name); err != nil {
		return 0, err
	}
	return v, nil
}
