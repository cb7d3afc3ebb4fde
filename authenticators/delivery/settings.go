package delivery

import (
	"slices"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// Settings points at the settings every channel's Config has, so that one
// reader parses their Caddyfile subdirectives for email and SMS alike.
type Settings struct {
	Send         *string
	LinkTTL      *caddy.Duration
	Limits       *authenticators.Limits
	Delivery     **Config
	Registration **authenticators.Registration
	// Own names the channel's own subdirectives, for the "did you
	// mean" of an unrecognized one.
	Own []string
}

// settingNames are the subdirectives UnmarshalSetting reads.
var settingNames = []string{"send", "link_ttl", "code_length", "code_ttl", "max_attempts", "max_sends", "throttle", "delivery", "registration"}

// UnmarshalBlock reads the block of a channel (email, sms) from d, which
// is positioned before the block's name, as for any caddyfile.Unmarshaler;
// the name takes no argument. Each subdirective goes to own, which reads
// the channel's own subdirectives and reports whether it knew the current
// one, and else to UnmarshalSetting; anything else is an error. Each
// subdirective may appear once, except those listed in repeatable, which
// own checks itself with seen. block names the block in errors ("mfa
// email", "sms").
func (s Settings) UnmarshalBlock(d *caddyfile.Dispenser, block string, repeatable []string,
	own func(d *caddyfile.Dispenser, seen cfargs.Once) (bool, error)) error {
	d.Next() // consume the block's name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if !slices.Contains(repeatable, d.Val()) {
			if err := seen.Check(d, block); err != nil {
				return err
			}
		}
		ok, err := own(d, seen)
		if err == nil && !ok {
			ok, err = s.UnmarshalSetting(d)
		}
		if err != nil {
			return err
		}
		if !ok {
			return cfargs.Unrecognized(d, block, append(slices.Clone(s.Own), settingNames...)...)
		}
	}
	return nil
}

// UnmarshalSetting reads the current subdirective of d when it is one of
// the shared settings, and reports whether it was:
//
//	send         code|link
//	link_ttl     <duration>
//	code_length  <digits>
//	code_ttl     <duration>
//	max_attempts <n>
//	max_sends    <n>
//	throttle     { ... }
//	delivery     { ... }
//	registration { ... }
//
// Counts and durations must be positive, because zero means "the default"
// in JSON; the value of send and the ranges are checked at provision, so
// the JSON and the Caddyfile refuse the same values. The caller checks
// for duplicates.
func (s Settings) UnmarshalSetting(d *caddyfile.Dispenser) (bool, error) {
	var err error
	switch d.Val() {
	case "send":
		*s.Send, err = cfargs.OneArg(d)
	case "link_ttl":
		*s.LinkTTL, err = cfargs.DurationArg(d, false)
	case "code_length":
		s.Limits.CodeLength, err = cfargs.IntArg(d, false)
	case "code_ttl":
		s.Limits.CodeTTL, err = cfargs.DurationArg(d, false)
	case "max_attempts":
		s.Limits.MaxAttempts, err = cfargs.IntArg(d, false)
	case "max_sends":
		s.Limits.MaxSends, err = cfargs.IntArg(d, false)
	case "throttle":
		s.Limits.Throttle = new(authenticators.Throttle)
		err = s.Limits.Throttle.UnmarshalCaddyfile(d)
	case "delivery":
		*s.Delivery = new(Config)
		err = (*s.Delivery).UnmarshalCaddyfile(d)
	case "registration":
		*s.Registration = new(authenticators.Registration)
		err = (*s.Registration).UnmarshalCaddyfile(d)
	default:
		return false, nil
	}
	return true, err
}
