package caddyfile

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/passkey"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/caddymfa"
	"github.com/caddymfa/caddy-mfa/internal/cfargs"
	"github.com/caddymfa/caddy-mfa/storage"
	_ "github.com/caddymfa/caddy-mfa/storage/badger" // the default store, "storage badger"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mfa", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("mfa", httpcaddyfile.After, "forward_auth")
}

// parseCaddyfile sets up the mfa handler from Caddyfile tokens; see
// Unmarshal for the syntax.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler, err := Unmarshal(h.Dispenser)
	if err != nil {
		return nil, err
	}
	return handler, nil
}

// mfaSubdirectives are the subdirectives of the mfa block, for the "did
// you mean" of an unrecognized one.
var mfaSubdirectives = []string{
	"user", "trust_identity_headers", "path_prefix", "base_url", "storage", "secret_key",
	"session_ttl", "idle_timeout", "policy", "geoip_db", "remember_device", "link_cross_device", "trusted_networks",
	"users", "users_file", "allow_emails", "lockout", "email", "sms", "totp", "passkey", "recovery_codes",
	"translations", "site_name", "logo", "css", "templates",
	"realm", "cookie_domain", "methods", "max_age",
}

// Unmarshal reads one mfa directive from d and returns the handler
// configuration it describes. Syntax:
//
//	mfa [<matcher>] {
//	    user                   <placeholder>|""
//	    trust_identity_headers
//	    path_prefix            <path>
//	    base_url               <url>
//	    storage                <backend> [<args...>] [{ ... }]
//	    secret_key             <key>
//	    session_ttl            <duration>
//	    idle_timeout           <duration>
//	    policy                 always|never|new_ip|new_country
//	    geoip_db               <path>
//	    remember_device        <duration>|off
//	    link_cross_device      on|off
//	    trusted_networks       <cidr|address|private_ranges...>
//	    users {
//	        <name> [email <address>] [phone <number>] [disabled]
//	    }
//	    users_file             <path>
//	    allow_emails           <pattern...>
//	    lockout                <failures> <window>
//	    translations           <dir>
//	    site_name              <name>
//	    logo                   <file>
//	    css                    <file>
//	    templates              <dir>
//	    email {
//	        smtp <host> [<port>] [{ ... }]
//	        outbox <dir>
//	        transport <module> [<args...>] [{ ... }]
//	        from         <address>
//	        send         code|link
//	        link_ttl     <duration>
//	        code_length  <digits>
//	        code_ttl     <duration>
//	        address      <placeholder>
//	        max_attempts <n>
//	        max_sends    <n>
//	        throttle {
//	            per_hour                 <n>|off
//	            per_5m                   <n>|off
//	            per_ip_per_hour          <n>|off
//	            per_user_per_hour        <n>|off
//	            per_destination_per_hour <n>|off
//	            cooldown                 <duration>|off
//	        }
//	        template subject <text>
//	        template text    <file>
//	        template html    <file>
//	        delivery {
//	            workers <n>
//	            retries <n>|off
//	            wait    <duration>
//	        }
//	    }
//	    sms {
//	        provider twilio { ... }
//	        provider webhook <url> [{ ... }]
//	        provider outbox <dir>
//	        provider <module> [<args...>] [{ ... }]
//	        message              [<language>] <text>
//	        send                 code|link
//	        link_ttl             <duration>
//	        link_message         [<language>] <text>
//	        code_length          <digits>
//	        code_ttl             <duration>
//	        max_attempts         <n>
//	        max_sends            <n>
//	        allowed_countries    <CC...>
//	        per_country_per_hour <n>|off
//	        throttle { ... }
//	        delivery { ... }
//	        registration { ... }
//	    }
//	    totp {
//	        issuer    <text>
//	        digits    6|8
//	        period    <duration>
//	        algorithm sha1|sha256|sha512
//	        skew      0|1|2
//	        enroll    verified|first_login|off
//	    }
//	    recovery_codes <n>
//	    realm          <name>
//	    cookie_domain  <domain>
//	    methods        email|sms|totp|passkey|recovery...
//	    max_age        <duration>
//	}
//
// Durations use Caddy's syntax, which also accepts days ("30d"). Each
// subdirective may appear once per block, except trusted_networks, whose
// lines add up, and the sms message and link_message, once per language;
// smtp, outbox and transport are alternatives. The email, sms and totp
// blocks are handed whole to the UnmarshalCaddyfile method of their
// package's Config, which gives their grammar, the transport and provider
// blocks included, and their errors. totp, with or without a block,
// enables codes from authenticator apps, with defaults for what it leaves
// out; skew 0 accepts only the current time step.
// remember_device off is the default, and private_ranges in
// trusted_networks is kept as written for the handler to expand. The
// dispenser must be positioned before the directive name.
func Unmarshal(d *caddyfile.Dispenser) (*caddymfa.Handler, error) {
	d.Next() // consume directive name
	if d.NextArg() {
		return nil, d.ArgErr()
	}

	h := new(caddymfa.Handler)
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		// trusted_networks may be repeated, each line adding networks
		if d.Val() != "trusted_networks" {
			if err := seen.Check(d, "mfa"); err != nil {
				return nil, err
			}
		}
		switch d.Val() {
		case "user":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			h.User = &v

		case "trust_identity_headers":
			if err := noArgs(d); err != nil {
				return nil, err
			}
			h.TrustIdentityHeaders = true

		case "path_prefix":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			h.PathPrefix = v

		case "translations", "site_name", "logo", "css", "templates":
			field := map[string]*string{"translations": &h.Translations, "site_name": &h.SiteName, "logo": &h.Logo,
				"css": &h.CSS, "templates": &h.Templates}[d.Val()]
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			*field = v

		case "base_url":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			h.BaseURL = v

		case "storage":
			raw, err := unmarshalStorage(d)
			if err != nil {
				return nil, err
			}
			h.StorageRaw = raw

		case "secret_key":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			h.SecretKey = v

		case "session_ttl":
			v, err := cfargs.DurationArg(d, false)
			if err != nil {
				return nil, err
			}
			h.SessionTTL = v

		case "idle_timeout":
			v, err := cfargs.DurationArg(d, false)
			if err != nil {
				return nil, err
			}
			h.IdleTimeout = v

		case "policy":
			v, err := policyArg(d)
			if err != nil {
				return nil, err
			}
			h.Policy = v

		case "geoip_db":
			v, err := geoIPArg(d)
			if err != nil {
				return nil, err
			}
			h.GeoIPDB = v

		case "remember_device":
			v, err := rememberArg(d)
			if err != nil {
				return nil, err
			}
			h.RememberDevice = v

		case "link_cross_device":
			v, err := cfargs.ChoiceArg(d, "invalid link_cross_device value", "on", "off")
			if err != nil {
				return nil, err
			}
			h.LinkCrossDevice = v == "on"

		case "trusted_networks":
			networks, err := networksArg(d)
			if err != nil {
				return nil, err
			}
			h.TrustedNetworks = append(h.TrustedNetworks, networks...)

		case "users":
			users, err := unmarshalUsers(d)
			if err != nil {
				return nil, err
			}
			h.Users = users

		case "users_file":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			h.UsersFile = v

		case "allow_emails":
			patterns := d.RemainingArgs()
			if len(patterns) == 0 {
				return nil, d.ArgErr()
			}
			if err := cfargs.EndLine(d, "allow_emails"); err != nil {
				return nil, err
			}
			h.AllowEmails = patterns

		case "lockout":
			lockout, err := unmarshalLockout(d)
			if err != nil {
				return nil, err
			}
			h.Lockout = lockout

		case "email":
			cfg := new(email.Config)
			if err := cfg.UnmarshalCaddyfile(d.NewFromNextSegment()); err != nil {
				return nil, err
			}
			h.Email = cfg

		case "sms":
			cfg := new(sms.Config)
			if err := cfg.UnmarshalCaddyfile(d.NewFromNextSegment()); err != nil {
				return nil, err
			}
			h.SMS = cfg

		case "totp":
			cfg := new(totp.Config)
			if err := cfg.UnmarshalCaddyfile(d.NewFromNextSegment()); err != nil {
				return nil, err
			}
			h.TOTP = cfg

		case "passkey":
			cfg := new(passkey.Config)
			if err := cfg.UnmarshalCaddyfile(d.NewFromNextSegment()); err != nil {
				return nil, err
			}
			h.Passkey = cfg

		case "recovery_codes":
			n, err := cfargs.RangeArg(d, totp.MinRecoveryCodes, totp.MaxRecoveryCodes)
			if err != nil {
				return nil, err
			}
			h.RecoveryCodes = n

		case "realm":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			h.Realm = v

		case "cookie_domain":
			v, err := cfargs.OneArg(d)
			if err != nil {
				return nil, err
			}
			h.CookieDomain = v

		case "methods":
			methods, err := methodsArg(d)
			if err != nil {
				return nil, err
			}
			h.Methods = methods

		case "max_age":
			v, err := cfargs.DurationArg(d, false)
			if err != nil {
				return nil, err
			}
			h.MaxAge = v

		default:
			return nil, cfargs.Unrecognized(d, "mfa", mfaSubdirectives...)
		}
	}
	return h, nil
}

// stepUpMethods are the methods "methods" may name.
var stepUpMethods = []string{"email", "sms", "totp", "passkey", "recovery"}

// methodsArg reads "methods <method...>": one or more distinct methods
// whose verification the handler accepts.
func methodsArg(d *caddyfile.Dispenser) ([]string, error) {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return nil, d.ArgErr()
	}
	var out []string
	for _, m := range args {
		if !slices.Contains(stepUpMethods, m) {
			msg := fmt.Sprintf("unknown method %q in methods (want %s)", m, strings.Join(stepUpMethods, ", "))
			if s := cfargs.Suggest(m, stepUpMethods); s != "" {
				msg += fmt.Sprintf("; did you mean %q?", s)
			}
			return nil, d.Err(msg)
		}
		if slices.Contains(out, m) {
			return nil, d.Errf("method %q is listed twice in methods", m)
		}
		out = append(out, m)
	}
	if err := cfargs.EndLine(d, "methods"); err != nil {
		return nil, err
	}
	return out, nil
}

// unmarshalStorage reads "storage <backend> [<args...>] [{ ... }]" and
// hands the tokens from <backend> on to the backend module.
func unmarshalStorage(d *caddyfile.Dispenser) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	modID := storage.Namespace + "." + name
	unm, err := caddyfile.UnmarshalModule(d, modID)
	if err != nil {
		return nil, err
	}
	if _, ok := unm.(storage.Store); !ok {
		return nil, d.Errf("module %s is not an mfa store; is %T", modID, unm)
	}
	return cfargs.ModuleJSON(d, unm, "backend", name)
}

// unmarshalUsers reads the users block, one user per line.
func unmarshalUsers(d *caddyfile.Dispenser) ([]caddymfa.UserEntry, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var users []caddymfa.UserEntry
	names := make(map[string]bool)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		u := caddymfa.UserEntry{Name: d.Val()}
		switch u.Name {
		case "":
			return nil, d.Err("mfa user name cannot be empty")
		case "{", "}":
			return nil, d.Errf("unexpected %q in mfa users block", u.Name)
		}
		if names[u.Name] {
			return nil, d.Errf("duplicate mfa user %q", u.Name)
		}
		names[u.Name] = true

		fields := make(cfargs.Once)
		for d.NextArg() {
			if err := fields.Check(d, "mfa user "+strconv.Quote(u.Name)); err != nil {
				return nil, err
			}
			switch d.Val() {
			case "email":
				if !d.NextArg() {
					return nil, d.ArgErr()
				}
				u.Email = d.Val()
			case "phone":
				if !d.NextArg() {
					return nil, d.ArgErr()
				}
				u.Phone = d.Val()
			case "disabled":
				u.Disabled = true
			default:
				return nil, cfargs.Unrecognized(d, fmt.Sprintf("mfa user %q", u.Name), "email", "phone", "disabled")
			}
		}
		if err := cfargs.EndLine(d, "mfa user "+strconv.Quote(u.Name)); err != nil {
			return nil, err
		}
		users = append(users, u)
	}
	return users, nil
}

// unmarshalLockout reads "lockout <failures> <window>", with an optional
// block holding "user_wide <failures> <window>": the user-wide cap of
// standalone mode, where the first two count per client network.
func unmarshalLockout(d *caddyfile.Dispenser) (*caddymfa.Lockout, error) {
	failures, window, err := lockoutArgs(d, "lockout")
	if err != nil {
		return nil, err
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	lock := &caddymfa.Lockout{Failures: failures, Window: window}
	seen := cfargs.Once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Check(d, "lockout"); err != nil {
			return nil, err
		}
		switch d.Val() {
		case "user_wide":
			if lock.UserFailures, lock.UserWindow, err = lockoutArgs(d, "user_wide"); err != nil {
				return nil, err
			}
			if err := cfargs.EndLine(d, "user_wide"); err != nil {
				return nil, err
			}
		default:
			return nil, cfargs.Unrecognized(d, "lockout", "user_wide")
		}
	}
	return lock, nil
}

// lockoutArgs reads "<failures> <window>" after name.
func lockoutArgs(d *caddyfile.Dispenser, name string) (int, caddy.Duration, error) {
	if !d.NextArg() {
		return 0, 0, d.ArgErr()
	}
	failures, err := cfargs.ParseCount(d, name+" failures", false)
	if err != nil {
		return 0, 0, err
	}
	if !d.NextArg() {
		return 0, 0, d.ArgErr()
	}
	window, err := cfargs.ParseDuration(d, name+" window", false)
	if err != nil {
		return 0, 0, err
	}
	return failures, window, nil
}

// noArgs refuses arguments and a block after the current token.
func noArgs(d *caddyfile.Dispenser) error {
	return cfargs.EndLine(d, d.Val())
}
