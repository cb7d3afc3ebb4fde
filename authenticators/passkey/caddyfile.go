package passkey

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// UnmarshalCaddyfile sets up passkeys from the tokens of a passkey block.
// The dispenser is positioned before the "passkey" token; the mfa
// directive passes d.NewFromNextSegment(). Syntax:
//
//	passkey {
//		rp_name           <text>
//		user_verification preferred|required|discouraged
//		attestation       none|indirect|direct
//		enroll            verified|first_login
//		passwordless      on|off
//	}
//
// A bare "passkey", or an empty block, enables passkeys with the
// defaults. Each subdirective may appear once.
func (c *Config) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume "passkey"
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := make(cfargs.Once)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := seen.Check(d, "mfa passkey"); err != nil {
			return err
		}
		var err error
		switch d.Val() {
		case "rp_name":
			c.RPName, err = cfargs.OneArg(d)
		case "user_verification":
			c.UserVerification, err = cfargs.ChoiceArg(d, "unrecognized passkey user_verification",
				VerificationPreferred, VerificationRequired, VerificationDiscouraged)
		case "attestation":
			c.Attestation, err = cfargs.ChoiceArg(d, "unrecognized passkey attestation",
				AttestationNone, AttestationIndirect, AttestationDirect)
		case "enroll":
			c.Enroll, err = cfargs.ChoiceArg(d, "unrecognized passkey enroll policy", EnrollVerified, EnrollFirstLogin)
		case "passwordless":
			var v string
			v, err = cfargs.ChoiceArg(d, "invalid passwordless value", "on", "off")
			c.Passwordless = v == "on"
		default:
			return cfargs.Unrecognized(d, "mfa passkey", "rp_name", "user_verification", "attestation", "enroll", "passwordless")
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Config)(nil)
