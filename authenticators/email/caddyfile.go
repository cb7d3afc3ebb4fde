package email

import (
	"encoding/json"
	"slices"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

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
	// smtp, outbox and transport are alternatives, checked as one; template
	// once per kind.
	repeatable := []string{"smtp", "outbox", "transport", "template"}
	settings := delivery.Settings{Send: &c.Send, LinkTTL: &c.LinkTTL, Limits: &c.Limits, Delivery: &c.Delivery, Registration: &c.Registration,
		Own: []string{"smtp", "outbox", "transport", "from", "address", "template"}}
	return settings.UnmarshalBlock(d, "mfa email", repeatable, c.unmarshalOwn)
}

// unmarshalOwn reads the subdirectives of the email block that the other
// channels do not have.
func (c *Config) unmarshalOwn(d *caddyfile.Dispenser, seen cfargs.Once) (bool, error) {
	var err error
	switch d.Val() {
	case "smtp", "outbox", "transport":
		if c.TransportRaw != nil {
			return true, d.Errf("duplicate mfa email transport %q: only one of smtp, outbox or transport may be given", d.Val())
		}
		c.TransportRaw, err = unmarshalTransport(d)
	case "from":
		c.From, err = cfargs.OneArg(d)
	case "address":
		c.Address, err = cfargs.OneArg(d)
	case "template":
		err = c.unmarshalTemplate(d, seen)
	default:
		return false, nil
	}
	return true, err
}

// unmarshalTransport reads "smtp ...", "outbox ..." or "transport <name>
// ..." and hands the tokens from the module's name on to the module.
func unmarshalTransport(d *caddyfile.Dispenser) (json.RawMessage, error) {
	if d.Val() == "transport" && !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	unm, err := caddyfile.UnmarshalModule(d, TransportNamespace+"."+name)
	if err != nil {
		return nil, err
	}
	return cfargs.ModuleJSON(d, unm, "transport", name)
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
	if err := s.unmarshalAddress(d); err != nil {
		return err
	}
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Check(d, "smtp"); err != nil {
			return err
		}
		var err error
		switch name := d.Val(); name {
		case "username":
			s.Username, err = cfargs.OneArg(d)
		case "password":
			s.Password, err = cfargs.OneArg(d)
		case "auth":
			s.Auth, err = onOff(d)
		case "tls":
			s.TLS, err = cfargs.OneArg(d)
			if modes := []string{TLSImplicit, TLSStartTLS, TLSStartTLSOptional, TLSNone}; err == nil && !slices.Contains(modes, s.TLS) {
				err = d.Errf("tls must be %s, %s, %s or %s, not %q", TLSImplicit, TLSStartTLS, TLSStartTLSOptional, TLSNone, s.TLS)
			}
		case "timeout":
			s.Timeout, err = timeoutArg(d)
		case "idle_timeout":
			s.IdleTimeout, err = timeoutArg(d)
		case "ca_file":
			s.CAFile, err = cfargs.OneArg(d)
		case "insecure_skip_verify":
			s.InsecureSkipVerify = true
			err = cfargs.EndLine(d, name)
		case "helo":
			s.HELO, err = cfargs.OneArg(d)
		default:
			return cfargs.Unrecognized(d, "smtp", "username", "password", "auth", "tls", "timeout", "idle_timeout", "ca_file", "insecure_skip_verify", "helo")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalAddress reads the arguments of "smtp <host> [<port>]".
func (s *SMTP) unmarshalAddress(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) == 0 || len(args) > 2 {
		return d.ArgErr()
	}
	s.Host = args[0]
	if len(args) == 2 {
		port, err := strconv.Atoi(args[1])
		if err != nil || port < 1 || port > 65535 {
			return d.Errf("invalid port %q", args[1])
		}
		s.Port = port
	}
	return nil
}

// onOff reads exactly one argument, on or off.
func onOff(d *caddyfile.Dispenser) (*bool, error) {
	name := d.Val()
	v, err := cfargs.OneArg(d)
	switch {
	case err != nil:
		return nil, err
	case v != "on" && v != "off":
		return nil, d.Errf("%s must be on or off, not %q", name, v)
	}
	on := v == "on"
	return &on, nil
}

// timeoutArg reads exactly one duration that is not negative; zero takes
// the default.
func timeoutArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	v, err := cfargs.OneArg(d)
	if err != nil {
		return 0, err
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur < 0 {
		return 0, d.Errf("invalid %s %q", name, v)
	}
	return caddy.Duration(dur), nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Config)(nil)
	_ caddyfile.Unmarshaler = (*SMTP)(nil)
	_ caddyfile.Unmarshaler = (*Outbox)(nil)
)
