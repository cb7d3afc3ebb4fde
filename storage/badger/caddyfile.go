package badger

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	storage badger [<dir>]
//
// The dispenser is positioned at the token "badger". With no directory the
// store lives in the "mfa" folder of Caddy's data directory.
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume module name
	if d.NextArg() {
		s.Dir = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	if nesting := d.Nesting(); d.NextBlock(nesting) {
		return d.Errf("storage badger takes no block, found '%s'", d.Val())
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Store)(nil)
