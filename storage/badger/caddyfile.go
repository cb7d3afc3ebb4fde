package badger

import (
	"math"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/dustin/go-humanize"

	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	storage badger [<dir>] {
//		min_free <size>|off
//	}
//
// The dispenser is positioned at the token "badger". With no directory the
// store lives in the "mfa" folder of Caddy's data directory. min_free takes
// sizes such as 64MiB or 1GB.
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume module name
	if d.NextArg() {
		s.Dir = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "min_free":
			if s.MinFree != 0 {
				return d.Err("min_free given twice")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			if d.Val() == "off" {
				s.MinFree = -1
			} else {
				n, err := humanize.ParseBytes(d.Val())
				if err != nil || n == 0 || n > math.MaxInt64 {
					return d.Errf("min_free: %q is not a size such as 64MiB, or off", d.Val())
				}
				s.MinFree = int64(n)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return cfargs.Unrecognized(d, "storage badger", "min_free")
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Store)(nil)
