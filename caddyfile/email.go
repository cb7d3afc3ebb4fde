package caddyfile

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// unmarshalEmail reads the email block of the mfa directive; see Unmarshal
// for the syntax.
func unmarshalEmail(d *caddyfile.Dispenser) (*email.Config, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	cfg := new(email.Config)
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "smtp", "outbox", "transport":
			// alternatives, so the duplicate check is on the transport as a whole
			if cfg.TransportRaw != nil {
				return nil, d.Errf("duplicate mfa email transport %q: only one of smtp, outbox or transport may be given", d.Val())
			}
		case "template":
			// checked per template kind below
		default:
			if err := seen.Check(d, "mfa email"); err != nil {
				return nil, err
			}
		}

		switch d.Val() {
		case "smtp", "outbox", "transport":
			if d.Val() == "transport" && !d.NextArg() {
				return nil, d.ArgErr()
			}
			name := d.Val()
			unm, err := caddyfile.UnmarshalModule(d, email.TransportNamespace+"."+name)
			if err != nil {
				return nil, err
			}
			raw, err := moduleJSON(d, unm, "transport", name)
			if err != nil {
				return nil, err
			}
			cfg.TransportRaw = raw

		case "from":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			cfg.From = v

		case "send":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			cfg.Send = v

		case "code_length":
			n, err := cfargs.IntArg(d, false)
			if err != nil {
				return nil, err
			}
			cfg.CodeLength = n

		case "code_ttl":
			v, err := cfargs.DurationArg(d, false)
			if err != nil {
				return nil, err
			}
			cfg.CodeTTL = v

		case "link_ttl":
			v, err := cfargs.DurationArg(d, false)
			if err != nil {
				return nil, err
			}
			cfg.LinkTTL = v

		case "address":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			cfg.Address = v

		case "max_attempts":
			n, err := cfargs.IntArg(d, false)
			if err != nil {
				return nil, err
			}
			cfg.MaxAttempts = n

		case "max_sends":
			n, err := cfargs.IntArg(d, false)
			if err != nil {
				return nil, err
			}
			cfg.MaxSends = n

		case "throttle":
			t := new(authenticators.Throttle)
			if err := t.UnmarshalCaddyfile(d); err != nil {
				return nil, err
			}
			cfg.Throttle = t

		case "template":
			if err := unmarshalTemplate(d, seen, cfg); err != nil {
				return nil, err
			}

		case "delivery":
			opts := new(delivery.Config)
			if err := opts.UnmarshalCaddyfile(d); err != nil {
				return nil, err
			}
			cfg.Delivery = opts

		case "registration":
			r := new(authenticators.Registration)
			if err := r.UnmarshalCaddyfile(d); err != nil {
				return nil, err
			}
			cfg.Registration = r

		default:
			return nil, d.Errf("unrecognized mfa email subdirective %q", d.Val())
		}
	}
	return cfg, nil
}

// unmarshalTemplate reads "template subject|text|html <value>". Each kind
// may be given once.
func unmarshalTemplate(d *caddyfile.Dispenser, seen cfargs.Once, cfg *email.Config) error {
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
	if cfg.Templates == nil {
		cfg.Templates = new(email.Templates)
	}
	switch kind {
	case "subject":
		cfg.Templates.Subject = v
	case "text":
		cfg.Templates.TextFile = v
	case "html":
		cfg.Templates.HTMLFile = v
	}
	return nil
}
