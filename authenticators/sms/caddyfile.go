package sms

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/text/language"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// UnmarshalCaddyfile sets up the SMS authenticator from the tokens of an
// sms block. The dispenser is positioned before the "sms" token, as for
// any caddyfile.Unmarshaler; the mfa directive passes
// d.NewFromNextSegment(). Syntax:
//
//	sms {
//		provider twilio {
//			account_sid <sid>
//			auth_token <token>
//			from <number>                    # or: messaging_service_sid <sid>
//			api_url <url>
//			timeout <duration>
//		}
//		provider webhook <url> {
//			method POST|PUT|PATCH
//			header <name> <value>
//			format json|form
//			body <template>
//			timeout <duration>
//		}
//		provider outbox <dir>
//		provider <module> [<args...>] [{ ... }]   # any module in mfa.sms_providers
//		message <text>                       # %s is where the code goes
//		message <language> <text>            # e.g. message sv "Din kod är %s"
//		send code|link
//		link_ttl <duration>
//		link_message <text>                  # %s is where the link goes
//		link_message <language> <text>
//		code_length <4..10>
//		code_ttl <duration>
//		max_attempts <n>
//		max_sends <n>
//		allowed_countries <CC> [<CC>...]
//		per_country_per_hour <n>|off
//		throttle {
//			per_hour <n>|off
//			per_5m <n>|off
//			per_ip_per_hour <n>|off
//			per_user_per_hour <n>|off
//			per_destination_per_hour <n>|off
//			cooldown <duration>|off
//		}
//		delivery {
//			workers <n>
//			retries <n>|off
//			wait <duration>
//		}
//	}
//
// Each subdirective may appear once, message and link_message once per
// language. Counts and durations must be positive, because zero means "the
// default" in JSON.
func (c *Config) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	settings := delivery.Settings{Send: &c.Send, LinkTTL: &c.LinkTTL, Limits: &c.Limits, Delivery: &c.Delivery, Registration: &c.Registration,
		Own: []string{"provider", "message", "link_message", "allowed_countries", "per_country_per_hour"}}
	// message and link_message are checked once per language
	return settings.UnmarshalBlock(d, "sms", []string{"message", "link_message"}, c.unmarshalOwn)
}

// unmarshalOwn reads the subdirectives of the sms block that the other
// channels do not have, and send and code_length, which it checks while
// parsing.
func (c *Config) unmarshalOwn(d *caddyfile.Dispenser, seen cfargs.Once) (bool, error) {
	var err error
	switch d.Val() {
	case "provider":
		c.ProviderRaw, err = unmarshalProvider(d)
	case "message", "link_message":
		err = c.unmarshalMessage(d, seen)
	case "send":
		c.Send, err = cfargs.OneArg(d)
		if err == nil && c.Send != SendCode && c.Send != SendLink {
			err = d.Errf("sms send must be code or link, not %q", c.Send)
		}
	case "code_length":
		c.CodeLength, err = cfargs.IntArg(d, false)
		if n := c.CodeLength; err == nil && (n < authenticators.MinCodeLength || n > authenticators.MaxCodeLength) {
			err = d.Errf("invalid code_length %d: must be from %d to %d", n, authenticators.MinCodeLength, authenticators.MaxCodeLength)
		}
	case "allowed_countries":
		c.AllowedCountries, err = unmarshalCountries(d)
	case "per_country_per_hour":
		c.PerCountryPerHour, err = cfargs.IntArg(d, true)
	default:
		return false, nil
	}
	return true, err
}

// unmarshalCountries reads "allowed_countries <CC> [<CC>...]": country
// codes with phone numbers, each once, in upper case.
func unmarshalCountries(d *caddyfile.Dispenser) ([]string, error) {
	codes := d.RemainingArgs()
	if len(codes) == 0 {
		return nil, d.ArgErr()
	}
	if err := cfargs.EndLine(d, "allowed_countries"); err != nil {
		return nil, err
	}
	var out []string
	for _, cc := range codes {
		up := strings.ToUpper(cc)
		if !ValidCountry(up) {
			return nil, d.Errf("allowed_countries: %q is not an ISO 3166-1 alpha-2 code with phone numbers", cc)
		}
		if slices.Contains(out, up) {
			return nil, d.Errf("allowed_countries: %q is listed twice", cc)
		}
		out = append(out, up)
	}
	return out, nil
}

// unmarshalProvider reads "provider <name> [<args...>] [{ ... }]" and
// hands the tokens from <name> on to the provider module.
func unmarshalProvider(d *caddyfile.Dispenser) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	modID := ProviderNamespace + "." + name
	unm, err := caddyfile.UnmarshalModule(d, modID)
	if err != nil {
		return nil, err
	}
	if _, ok := unm.(Provider); !ok {
		return nil, d.Errf("module %s is not an sms provider; is %T", modID, unm)
	}
	var warnings []caddyconfig.Warning
	raw := caddyconfig.JSONModuleObject(unm, "provider", name, &warnings)
	if len(warnings) > 0 {
		return nil, d.Errf("encoding sms provider %q: %s", name, warnings[0].Message)
	}
	return raw, nil
}

// unmarshalMessage reads "message <text>" or "message <language> <text>",
// each once per language, and link_message likewise.
func (c *Config) unmarshalMessage(d *caddyfile.Dispenser, seen cfargs.Once) error {
	name := d.Val()
	args := d.RemainingArgs()
	if err := cfargs.EndLine(d, name); err != nil {
		return err
	}
	var lang, text string
	switch len(args) {
	case 1:
		text = args[0]
	case 2:
		lang, text = args[0], args[1]
	default:
		return d.ArgErr()
	}
	key := name
	if lang != "" {
		tag, err := language.Parse(lang)
		if err != nil || tag == language.Und {
			return d.Errf("%s: %q is not a language tag", name, lang)
		}
		key += " " + tag.String()
	}
	if seen[key] {
		return d.Errf("duplicate sms subdirective %q", key)
	}
	seen[key] = true
	if _, err := parseTemplate(text); err != nil {
		return d.Errf("%s: %w", key, err)
	}
	def, localized := &c.Message, &c.Messages
	if name == "link_message" {
		def, localized = &c.LinkMessage, &c.LinkMessages
	}
	if lang == "" {
		*def = text
		return nil
	}
	if *localized == nil {
		*localized = make(map[string]string)
	}
	(*localized)[lang] = text
	return nil
}

// UnmarshalCaddyfile sets up the twilio provider from Caddyfile tokens.
// Syntax:
//
//	twilio {
//		account_sid <sid>
//		auth_token <token>
//		from <number or sender id>
//		messaging_service_sid <sid>
//		api_url <url>
//		timeout <duration>
//	}
func (tw *Twilio) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume "twilio"
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Check(d, "twilio"); err != nil {
			return err
		}
		var dst *string
		switch d.Val() {
		case "account_sid":
			dst = &tw.AccountSID
		case "auth_token":
			dst = &tw.AuthToken
		case "from":
			dst = &tw.From
		case "messaging_service_sid":
			dst = &tw.MessagingServiceSID
		case "api_url":
			dst = &tw.APIURL
		case "timeout":
			v, err := cfargs.DurationArg(d, false)
			if err != nil {
				return err
			}
			tw.Timeout = v
			continue
		default:
			return cfargs.Unrecognized(d, "twilio", "account_sid", "auth_token", "from", "messaging_service_sid", "api_url", "timeout")
		}
		v, err := cfargs.OneArg(d)
		if err != nil {
			return err
		}
		*dst = v
	}
	return nil
}

// UnmarshalCaddyfile sets up the webhook provider from Caddyfile tokens.
// Syntax:
//
//	webhook <url> {
//		method POST|PUT|PATCH
//		header <name> <value>
//		format json|form
//		body <template>
//		timeout <duration>
//	}
//
// header may be repeated, once per name.
func (w *Webhook) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume "webhook"
	if !d.NextArg() {
		return d.ArgErr()
	}
	w.URL = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if d.Val() != "header" {
			if err := seen.Check(d, "webhook"); err != nil {
				return err
			}
		}
		switch d.Val() {
		case "method":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return err
			}
			switch v = strings.ToUpper(v); v {
			case http.MethodPost, http.MethodPut, http.MethodPatch:
				w.Method = v
			default:
				return d.Errf("webhook method must be POST, PUT or PATCH, not %q", v)
			}
		case "header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.ArgErr()
			}
			if err := cfargs.EndLine(d, "header"); err != nil {
				return err
			}
			key := "header " + strings.ToLower(args[0])
			if seen[key] {
				return d.Errf("duplicate webhook header %q", args[0])
			}
			seen[key] = true
			if w.Headers == nil {
				w.Headers = make(map[string]string)
			}
			w.Headers[args[0]] = args[1]
		case "format":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return err
			}
			if v != FormatJSON && v != FormatForm {
				return d.Errf("webhook format must be %s or %s, not %q", FormatJSON, FormatForm, v)
			}
			w.Format = v
		case "body":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return err
			}
			w.Body = v
		case "timeout":
			v, err := cfargs.DurationArg(d, false)
			if err != nil {
				return err
			}
			w.Timeout = v
		default:
			return cfargs.Unrecognized(d, "webhook", "method", "header", "format", "body", "timeout")
		}
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Config)(nil)
	_ caddyfile.Unmarshaler = (*Twilio)(nil)
	_ caddyfile.Unmarshaler = (*Webhook)(nil)
	_ caddyfile.Unmarshaler = (*Outbox)(nil)
)
