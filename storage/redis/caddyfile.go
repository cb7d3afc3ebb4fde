package redis

import (
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// UnmarshalCaddyfile sets up the store from Caddyfile tokens. Syntax:
//
//	storage redis [<url>] {
//	    username      <name>
//	    password      <password>
//	    db            <number>
//	    ca_file       <path>
//	    sentinel      <master> <address...>
//	    key_prefix    <prefix>
//	    timeout       <duration>
//	    pool_size     <n>
//	    wait_replicas <n>
//	}
//
// The dispenser is positioned at the token "redis". <url> is
// redis://[user[:password]@]host[:port][/db] or rediss://... for TLS;
// without it (and without sentinel) the server is redis://127.0.0.1:6379.
// Placeholders are resolved at provision.
func (s *Store) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume module name
	if d.NextArg() {
		s.URL = d.Val()
		if !strings.Contains(s.URL, "{") {
			if _, err := parseURL(s.URL); err != nil {
				return d.Err(err.Error())
			}
		}
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := cfargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Check(d, "storage redis"); err != nil {
			return err
		}
		var err error
		switch name := d.Val(); name {
		case "username":
			s.Username, err = cfargs.OneArg(d)
		case "password":
			s.Password, err = cfargs.OneArg(d)
		case "db":
			var v string
			if v, err = cfargs.OneArg(d); err == nil {
				if s.DB, err = parseDB(v); err != nil {
					return d.Errf("invalid db: %v", err)
				}
			}
		case "ca_file":
			s.CAFile, err = cfargs.OneArg(d)
		case "sentinel":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Err("sentinel needs a master name and at least one sentinel address")
			}
			s.Sentinel = &Sentinel{MasterName: args[0], Addresses: args[1:]}
			if d.NextBlock(d.Nesting()) {
				return d.Errf("%s takes no block", name)
			}
		case "key_prefix":
			s.KeyPrefix, err = cfargs.OneArg(d)
			if err == nil && s.KeyPrefix == "" {
				return d.Err("key_prefix cannot be empty")
			}
		case "timeout":
			s.Timeout, err = cfargs.DurationArg(d, false)
		case "pool_size":
			s.PoolSize, err = cfargs.IntArg(d, false)
		case "wait_replicas":
			s.WaitReplicas, err = cfargs.IntArg(d, false)
		default:
			return cfargs.Unrecognized(d, "storage redis", "username", "password", "db", "ca_file", "sentinel", "key_prefix", "timeout", "pool_size", "wait_replicas")
		}
		if err != nil {
			return err
		}
	}
	if s.Sentinel != nil && s.URL != "" {
		return d.Err("storage redis takes a url or a sentinel, not both")
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Store)(nil)
