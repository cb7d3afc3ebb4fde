package passkey

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// CeremonyTimeout is how long the browser is given to answer a
// registration or sign-in; the caller keeps a ceremony's state as long.
const CeremonyTimeout = 5 * time.Minute

// ErrNoBaseURL refuses a relying party without base_url: its ID and
// origin are never taken from a request.
var ErrNoBaseURL = errors.New("passkey needs base_url: the relying party ID and the origin are its host name and origin, never a request's Host")

// ErrInvalid is wrapped by every refusal of an authenticator's answer.
var ErrInvalid = errors.New("invalid passkey response")

// CounterError refuses an assertion whose signature counter did not go
// up: the credential may have been cloned.
type CounterError struct {
	Stored, Got uint32
}

func (e *CounterError) Error() string {
	return fmt.Sprintf("passkey signature counter went backwards: stored %d, got %d", e.Stored, e.Got)
}

// Credential is a registered passkey: what checking its assertions
// needs. It holds no secret.
type Credential struct {
	ID                []byte   `json:"id"`
	PublicKey         []byte   `json:"pk"`
	SignCount         uint32   `json:"sc,omitempty"`
	AAGUID            []byte   `json:"aaguid,omitempty"`
	Transports        []string `json:"tr,omitempty"`
	UserVerified      bool     `json:"uv,omitempty"`
	BackupEligible    bool     `json:"be,omitempty"`
	BackupState       bool     `json:"bs,omitempty"`
	AttestationType   string   `json:"at,omitempty"`
	AttestationFormat string   `json:"af,omitempty"`
}

// User is the account a passkey is made for: Handle is the opaque user
// handle authenticators keep (at most 64 bytes, no personal data), Name
// what they show.
type User struct {
	Handle []byte
	Name   string
}

// RelyingParty makes and checks the ceremonies of one site.
type RelyingParty struct {
	wa           *webauthn.WebAuthn
	uv           protocol.UserVerificationRequirement
	discoverable bool
}

// New builds the relying party of the site at base: its ID is base's host
// name and base's origin the only origin accepted. discoverable asks for
// passkeys that name their user (needed where sign-in starts without a
// name: passwordless, and standalone mode, which never tells who has a
// passkey).
func New(c *Config, base *url.URL, discoverable bool) (*RelyingParty, error) {
	if base == nil || base.Hostname() == "" {
		return nil, ErrNoBaseURL
	}
	name := c.RPName
	if name == "" {
		name = base.Hostname()
	}
	uv := protocol.UserVerificationRequirement(c.UserVerification)
	rk := protocol.ResidentKeyRequirementPreferred
	if discoverable {
		rk = protocol.ResidentKeyRequirementRequired
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  base.Hostname(),
		RPDisplayName:         name,
		RPOrigins:             []string{base.Scheme + "://" + base.Host},
		AttestationPreference: protocol.ConveyancePreference(c.Attestation),
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: protocol.ResidentKeyRequired(),
			ResidentKey:        rk,
			UserVerification:   uv,
		},
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Timeout: CeremonyTimeout, TimeoutUVD: CeremonyTimeout},
			Registration: webauthn.TimeoutConfig{Timeout: CeremonyTimeout, TimeoutUVD: CeremonyTimeout},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey relying party for %s: %w", base.Hostname(), err)
	}
	if !discoverable {
		f := false
		wa.Config.AuthenticatorSelection.RequireResidentKey = &f
	}
	return &RelyingParty{wa: wa, uv: uv, discoverable: discoverable}, nil
}

// ID is the relying party ID.
func (rp *RelyingParty) ID() string { return rp.wa.Config.RPID }

// BeginRegistration makes the options of a new passkey for u
// (PublicKeyCredentialCreationOptionsJSON) and the state to hand to
// FinishRegistration. exclude are the user's passkeys, which the
// authenticator must not register again.
func (rp *RelyingParty) BeginRegistration(u User, exclude []Credential) (options json.RawMessage, state []byte, err error) {
	creation, session, err := rp.wa.BeginRegistration(waUser{u: u}, webauthn.WithExclusions(descriptors(exclude)))
	if err != nil {
		return nil, nil, fmt.Errorf("beginning passkey registration: %w", err)
	}
	return encodeCeremony(creation.Response, session)
}

// FinishRegistration checks an authenticator's RegistrationResponseJSON
// against the state of BeginRegistration, made for the user handle
// handle, and returns the new credential.
func (rp *RelyingParty) FinishRegistration(state, handle, response []byte) (Credential, error) {
	var session webauthn.SessionData
	if err := json.Unmarshal(state, &session); err != nil {
		return Credential{}, fmt.Errorf("reading passkey ceremony: %w", err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return Credential{}, invalid(err)
	}
	c, err := rp.wa.CreateCredential(waUser{u: User{Handle: handle}}, session, parsed)
	if err != nil {
		return Credential{}, invalid(err)
	}
	return fromWA(c), nil
}

// BeginLogin makes the options of a sign-in (PublicKeyCredentialRequestOptionsJSON)
// and the state to hand to FinishLogin. allow lists the passkeys that may
// answer; empty, any discoverable passkey of the site may, and it names
// its user.
func (rp *RelyingParty) BeginLogin(allow []Credential) (options json.RawMessage, state []byte, err error) {
	opts := []webauthn.LoginOption{webauthn.WithUserVerification(rp.uv)}
	if len(allow) > 0 {
		opts = append(opts, webauthn.WithAllowedCredentials(descriptors(allow)))
	}
	assertion, session, err := rp.wa.BeginDiscoverableLogin(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("beginning passkey sign-in: %w", err)
	}
	if len(allow) > 0 {
		for _, c := range allow {
			session.AllowedCredentialIDs = append(session.AllowedCredentialIDs, c.ID)
		}
	}
	return encodeCeremony(assertion.Response, session)
}

// Assertion is an authenticator's AuthenticationResponseJSON, parsed but
// not yet checked: the caller learns which credential and user it claims,
// to count the attempt in that user's lockout before FinishLogin checks it.
type Assertion struct {
	parsed *protocol.ParsedCredentialAssertionData
}

// ParseAssertion reads an AuthenticationResponseJSON.
func ParseAssertion(response []byte) (*Assertion, error) {
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, invalid(err)
	}
	return &Assertion{parsed: parsed}, nil
}

// CredentialID is the ID of the credential the assertion claims.
func (a *Assertion) CredentialID() []byte { return a.parsed.RawID }

// UserHandle is the user handle the authenticator returned, if any.
func (a *Assertion) UserHandle() []byte { return a.parsed.Response.UserHandle }

// FinishLogin checks an assertion against the state of BeginLogin and the
// passkeys creds of the user whose handle is handle: the challenge, the
// origin, the RP ID hash, the flags, the signature by the credential's
// key, the user handle if the authenticator gave one, and the signature
// counter. It returns the credential with its new counter and flags; a
// counter that did not go up is a *CounterError.
func (rp *RelyingParty) FinishLogin(state []byte, a *Assertion, handle []byte, creds []Credential) (Credential, error) {
	var session webauthn.SessionData
	if err := json.Unmarshal(state, &session); err != nil {
		return Credential{}, fmt.Errorf("reading passkey ceremony: %w", err)
	}
	session.UserID = handle
	c, err := rp.wa.ValidateLogin(waUser{u: User{Handle: handle}, creds: creds}, session, a.parsed)
	if err != nil {
		return Credential{}, invalid(err)
	}
	if c.Authenticator.CloneWarning {
		return fromWA(c), &CounterError{Stored: c.Authenticator.SignCount, Got: a.parsed.Response.AuthenticatorData.Counter}
	}
	return fromWA(c), nil
}

// invalid wraps a refusal of the library, keeping its details for logs.
func invalid(err error) error {
	var pe *protocol.Error
	if errors.As(err, &pe) && pe.DevInfo != "" {
		return fmt.Errorf("%w: %s (%s)", ErrInvalid, pe.Details, pe.DevInfo)
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

// encodeCeremony answers the options as JSON and the session as state.
func encodeCeremony(options any, session *webauthn.SessionData) (json.RawMessage, []byte, error) {
	o, err := json.Marshal(options)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding passkey options: %w", err)
	}
	s, err := json.Marshal(session)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding passkey ceremony: %w", err)
	}
	return o, s, nil
}

// waUser is a User as the library sees it.
type waUser struct {
	u     User
	creds []Credential
}

func (w waUser) WebAuthnID() []byte          { return w.u.Handle }
func (w waUser) WebAuthnName() string        { return w.u.Name }
func (w waUser) WebAuthnDisplayName() string { return w.u.Name }
func (w waUser) WebAuthnCredentials() []webauthn.Credential {
	out := make([]webauthn.Credential, len(w.creds))
	for i, c := range w.creds {
		out[i] = toWA(c)
	}
	return out
}

func descriptors(creds []Credential) []protocol.CredentialDescriptor {
	out := make([]protocol.CredentialDescriptor, len(creds))
	for i, c := range creds {
		w := toWA(c)
		out[i] = w.Descriptor()
	}
	return out
}

func toWA(c Credential) webauthn.Credential {
	w := webauthn.Credential{
		ID:                c.ID,
		PublicKey:         c.PublicKey,
		AttestationType:   c.AttestationType,
		AttestationFormat: c.AttestationFormat,
		Flags: webauthn.CredentialFlags{
			UserPresent:    true,
			UserVerified:   c.UserVerified,
			BackupEligible: c.BackupEligible,
			BackupState:    c.BackupState,
		},
		Authenticator: webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount},
	}
	for _, t := range c.Transports {
		w.Transport = append(w.Transport, protocol.AuthenticatorTransport(t))
	}
	return w
}

func fromWA(w *webauthn.Credential) Credential {
	c := Credential{
		ID:                w.ID,
		PublicKey:         w.PublicKey,
		SignCount:         w.Authenticator.SignCount,
		AAGUID:            w.Authenticator.AAGUID,
		UserVerified:      w.Flags.UserVerified,
		BackupEligible:    w.Flags.BackupEligible,
		BackupState:       w.Flags.BackupState,
		AttestationType:   w.AttestationType,
		AttestationFormat: w.AttestationFormat,
	}
	for _, t := range w.Transport {
		c.Transports = append(c.Transports, string(t))
	}
	return c
}
