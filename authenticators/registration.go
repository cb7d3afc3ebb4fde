package authenticators

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// Registration lets users add or change their own address for a method
// (a phone number for SMS, an address for email), confirmed by a code sent
// to the new address. A user must first
// pass another factor: changing the number must not turn one factor into
// two.
type Registration struct {
	// DuringLogin shows a "register" link on each step of the sign-in.
	DuringLogin bool `json:"during_login,omitempty"`
	// Require names the methods that may authorize a registration (e.g.
	// "totp"); the user must have signed in with one of them in the last
	// 15 minutes. Default: totp when configured, else the other message
	// method.
	Require []string `json:"require,omitempty"`
	// ShowInfo shows a page that explains the registration first.
	ShowInfo bool `json:"show_info,omitempty"`
}

// UnmarshalCaddyfile reads a registration block:
//
//	registration {
//	    during_login on|off
//	    require      <method...>
//	    show_info    on|off
//	}
func (r *Registration) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("registration: %s given twice", name)
		}
		seen[name] = true
		switch name {
		case "during_login", "show_info":
			var v string
			if !d.Args(&v) || d.NextArg() {
				return d.Errf("registration: %s takes on or off", name)
			}
			if v != "on" && v != "off" {
				return d.Errf("registration: %s takes on or off, not %q", name, v)
			}
			if name == "during_login" {
				r.DuringLogin = v == "on"
			} else {
				r.ShowInfo = v == "on"
			}
		case "require":
			r.Require = d.RemainingArgs()
			if len(r.Require) == 0 {
				return d.Errf("registration: require names one or more methods (totp, email, sms)")
			}
			for _, m := range r.Require {
				if m != "totp" && m != "email" && m != "sms" {
					return d.Errf("registration: require: unknown method %q (totp, email, sms)", m)
				}
			}
		default:
			return cfargs.Unrecognized(d, "registration", "during_login", "show_info", "require")
		}
	}
	return nil
}
