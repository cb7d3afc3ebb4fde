package authenticators

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// UnmarshalCaddyfile reads a throttle block, the same for every method:
//
//	throttle {
//	    per_hour                 <n>|off
//	    per_5m                   <n>|off
//	    per_ip_per_hour          <n>|off
//	    per_user_per_hour        <n>|off
//	    per_destination_per_hour <n>|off
//	    cooldown                 <duration>|off
//	}
func (t *Throttle) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Check(d, "throttle"); err != nil {
			return err
		}
		var dst *int
		switch d.Val() {
		case "per_hour":
			dst = &t.PerHour
		case "per_5m":
			dst = &t.Per5m
		case "per_ip_per_hour":
			dst = &t.PerIPPerHour
		case "per_user_per_hour":
			dst = &t.PerUserPerHour
		case "per_destination_per_hour":
			dst = &t.PerDestinationPerHour
		case "cooldown":
			v, err := cfargs.DurationArg(d, true)
			if err != nil {
				return err
			}
			t.Cooldown = v
			continue
		default:
			return cfargs.Unrecognized(d, "throttle", "per_hour", "per_5m", "per_ip_per_hour", "per_user_per_hour", "per_destination_per_hour", "cooldown")
		}
		n, err := cfargs.IntArg(d, true)
		if err != nil {
			return err
		}
		*dst = n
	}
	return nil
}
