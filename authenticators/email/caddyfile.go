package email

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// UnmarshalCaddyfile sets up the smtp transport from Caddyfile tokens.
// Syntax:
//
//	smtp <host> [<port>] {
//		username <username>
//		password <password>
//		auth on|off
//		tls implicit|starttls|starttls_optional|none
//		timeout <duration>
//		idle_timeout <duration>
//		ca_file <pem file>
//		insecure_skip_verify
//		helo <name>
//	}
func (s *SMTP) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume "smtp"
	if !d.NextArg() {
		return d.ArgErr()
	}
	s.Host = d.Val()
	if d.NextArg() {
		port, err := strconv.Atoi(d.Val())
		if err != nil || port < 1 || port > 65535 {
			return d.Errf("invalid port %q", d.Val())
		}
		s.Port = port
	}
	if d.NextArg() {
		return d.ArgErr()
	}

	seen := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		if seen[name] {
			return d.Errf("duplicate subdirective %q", name)
		}
		seen[name] = true
		switch name {
		case "username":
			if err := oneArg(d, &s.Username); err != nil {
				return err
			}
		case "password":
			if err := oneArg(d, &s.Password); err != nil {
				return err
			}
		case "auth":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			switch v {
			case "on":
				s.Auth = new(bool)
				*s.Auth = true
			case "off":
				s.Auth = new(bool)
			default:
				return d.Errf("auth must be on or off, not %q", v)
			}
		case "tls":
			if err := oneArg(d, &s.TLS); err != nil {
				return err
			}
			switch s.TLS {
			case TLSImplicit, TLSStartTLS, TLSStartTLSOptional, TLSNone:
			default:
				return d.Errf("tls must be %s, %s, %s or %s, not %q",
					TLSImplicit, TLSStartTLS, TLSStartTLSOptional, TLSNone, s.TLS)
			}
		case "timeout", "idle_timeout":
			var v string
			if err := oneArg(d, &v); err != nil {
				return err
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < 0 {
				return d.Errf("invalid %s %q", name, v)
			}
			if name == "timeout" {
				s.Timeout = caddy.Duration(dur)
			} else {
				s.IdleTimeout = caddy.Duration(dur)
			}
		case "ca_file":
			if err := oneArg(d, &s.CAFile); err != nil {
				return err
			}
		case "insecure_skip_verify":
			if d.NextArg() {
				return d.ArgErr()
			}
			s.InsecureSkipVerify = true
		case "helo":
			if err := oneArg(d, &s.HELO); err != nil {
				return err
			}
		default:
			return d.Errf("unrecognized smtp subdirective %q", name)
		}
	}
	return nil
}

// oneArg reads exactly one argument into dst.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*SMTP)(nil)
	_ caddyfile.Unmarshaler = (*Outbox)(nil)
)
