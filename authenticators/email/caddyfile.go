package email

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// UnmarshalCaddyfile sets up the email authenticator from the tokens of
// an email block. The dispenser is positioned before the "email" token, as
// for any caddyfile.Unmarshaler; the mfa directive passes
// d.NewFromNextSegment(). Syntax:
//
//	email {
//		smtp <host> [<port>] [{ ... }]
//		outbox <dir>
//		transport <module> [<args...>] [{ ... }]   # any module in mfa.email_transports
//		from         <address>
//		send         code|link
//		link_ttl     <duration>
//		code_length  <digits>
//		code_ttl     <duration>
//		address      <placeholder>
//		max_attempts <n>
//		max_sends    <n>
//		throttle {
//			per_hour                 <n>|off
//			per_5m                   <n>|off
//			per_ip_per_hour          <n>|off
//			per_user_per_hour        <n>|off
//			per_destination_per_hour <n>|off
//			cooldown                 <duration>|off
//		}
//		template subject <text>
//		template text    <file>
//		template html    <file>
//		delivery {
//			workers <n>
//			retries <n>|off
//			wait    <duration>
//		}
//		registration { ... }
//	}
//
// Each subdirective may appear once, template once per kind; smtp, outbox
// and transport are alternatives, whose tokens go to the transport
// module's own unmarshaler. Counts and durations must be positive,
// because zero means "the default" in JSON; the ranges are checked at
// provision, so the JSON and the Caddyfile refuse the same values.
func (c *Config) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume "email"
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "smtp", "outbox", "transport":
			// alternatives, so the duplicate check is on the transport as a whole
			if c.TransportRaw != nil {
				return d.Errf("duplicate mfa email transport %q: only one of smtp, outbox or transport may be given", d.Val())
			}
		case "template":
			// checked per template kind below
		default:
			if err := seen.Check(d, "mfa email"); err != nil {
				return err
			}
		}

		switch d.Val() {
		case "smtp", "outbox", "transport":
			if d.Val() == "transport" && !d.NextArg() {
				return d.ArgErr()
			}
			name := d.Val()
			unm, err := caddyfile.UnmarshalModule(d, TransportNamespace+"."+name)
			if err != nil {
				return err
			}
			raw, err := cfargs.ModuleJSON(d, unm, "transport", name)
			if err != nil {
				return err
			}
			c.TransportRaw = raw

		case "from":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return err
			}
			c.From = v

		case "send":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return err
			}
			c.Send = v

		case "code_length":
			n, err := cfargs.IntArg(d, false)
			if err != nil {
				return err
			}
			c.CodeLength = n

		case "code_ttl":
			v, err := cfargs.DurationArg(d, false)
			if err != nil {
				return err
			}
			c.CodeTTL = v

		case "link_ttl":
			v, err := cfargs.DurationArg(d, false)
			if err != nil {
				return err
			}
			c.LinkTTL = v

		case "address":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return err
			}
			c.Address = v

		case "max_attempts":
			n, err := cfargs.IntArg(d, false)
			if err != nil {
				return err
			}
			c.MaxAttempts = n

		case "max_sends":
			n, err := cfargs.IntArg(d, false)
			if err != nil {
				return err
			}
			c.MaxSends = n

		case "throttle":
			t := new(authenticators.Throttle)
			if err := t.UnmarshalCaddyfile(d); err != nil {
				return err
			}
			c.Throttle = t

		case "template":
			if err := c.unmarshalTemplate(d, seen); err != nil {
				return err
			}

		case "delivery":
			opts := new(delivery.Config)
			if err := opts.UnmarshalCaddyfile(d); err != nil {
				return err
			}
			c.Delivery = opts

		case "registration":
			r := new(authenticators.Registration)
			if err := r.UnmarshalCaddyfile(d); err != nil {
				return err
			}
			c.Registration = r

		default:
			return d.Errf("unrecognized mfa email subdirective %q", d.Val())
		}
	}
	return nil
}

// unmarshalTemplate reads "template subject|text|html <value>". Each kind
// may be given once.
func (c *Config) unmarshalTemplate(d *caddyfile.Dispenser, seen cfargs.Once) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	kind := d.Val()
	switch kind {
	case "subject", "text", "html":
	default:
		return d.Errf("unrecognized template %q: must be subject, text or html", kind)
	}
	if seen["template "+kind] {
		return d.Errf("duplicate mfa email subdirective %q", "template "+kind)
	}
	seen["template "+kind] = true

	v, err := cfargs.OneArg(d)
	if err != nil {
		return err
	}
	if c.Templates == nil {
		c.Templates = new(Templates)
	}
	switch kind {
	case "subject":
		c.Templates.Subject = v
	case "text":
		c.Templates.TextFile = v
	case "html":
		c.Templates.HTMLFile = v
	}
	return nil
}

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
	_ caddyfile.Unmarshaler = (*Config)(nil)
	_ caddyfile.Unmarshaler = (*SMTP)(nil)
	_ caddyfile.Unmarshaler = (*Outbox)(nil)
)
