package passkey

import (
	"fmt"
	"strings"
)

// User verification requirements (WebAuthn userVerification).
const (
	VerificationPreferred   = "preferred"
	VerificationRequired    = "required"
	VerificationDiscouraged = "discouraged"
)

// Attestation conveyance preferences (WebAuthn attestation).
const (
	AttestationNone     = "none"
	AttestationIndirect = "indirect"
	AttestationDirect   = "direct"
)

// Registration policies: who may add a passkey to an account.
const (
	// EnrollVerified lets a user add a passkey from a session made by
	// another factor within the last 15 minutes.
	EnrollVerified = "verified"
	// EnrollFirstLogin also lets a user who has no passkey yet add one
	// during sign-in, after the first factor alone (trust on first use).
	EnrollFirstLogin = "first_login"
)

// Config is the passkey block.
type Config struct {
	// RPName is the site's name that authenticators show when a passkey
	// is made. Default: the host name of base_url.
	RPName string `json:"rp_name,omitempty"`
	// UserVerification asks authenticators to verify the user (a PIN,
	// a fingerprint): "preferred" (default), "required" or
	// "discouraged". With "required", an assertion without the user
	// verified flag is refused.
	UserVerification string `json:"user_verification,omitempty"`
	// Attestation is the attestation conveyance asked for: "none"
	// (default), "indirect" or "direct". Attestation statements are
	// checked for consistency but no authenticator maker is trusted or
	// refused by it.
	Attestation string `json:"attestation,omitempty"`
	// Enroll says who may add a passkey: "verified" (default: a session
	// made by another factor in the last 15 minutes) or "first_login"
	// (also during sign-in, after the first factor alone, for a user
	// with no passkey yet).
	Enroll string `json:"enroll,omitempty"`
	// Passwordless offers "Sign in with a passkey" on the identify page
	// of standalone mode: a discoverable credential names the user and
	// is the factor. Off by default; standalone mode only.
	Passwordless bool `json:"passwordless,omitempty"`
}

// ApplyDefaults fills unset fields with their defaults.
func (c *Config) ApplyDefaults() {
	c.UserVerification = strings.ToLower(strings.TrimSpace(c.UserVerification))
	if c.UserVerification == "" {
		c.UserVerification = VerificationPreferred
	}
	c.Attestation = strings.ToLower(strings.TrimSpace(c.Attestation))
	if c.Attestation == "" {
		c.Attestation = AttestationNone
	}
	c.Enroll = strings.ToLower(strings.TrimSpace(c.Enroll))
	if c.Enroll == "" {
		c.Enroll = EnrollVerified
	}
}

// Validate checks the values after ApplyDefaults.
func (c *Config) Validate() error {
	switch c.UserVerification {
	case VerificationPreferred, VerificationRequired, VerificationDiscouraged:
	default:
		return fmt.Errorf("passkey: unknown user_verification %q (want preferred, required or discouraged)", c.UserVerification)
	}
	switch c.Attestation {
	case AttestationNone, AttestationIndirect, AttestationDirect:
	default:
		return fmt.Errorf("passkey: unknown attestation %q (want none, indirect or direct)", c.Attestation)
	}
	switch c.Enroll {
	case EnrollVerified, EnrollFirstLogin:
	default:
		return fmt.Errorf("passkey: unknown enroll policy %q (want verified or first_login)", c.Enroll)
	}
	return nil
}
