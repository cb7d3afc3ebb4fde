// Package webauthntest is a software authenticator for tests: it answers
// the WebAuthn options of a relying party (as JSON, the way
// navigator.credentials receives them) with the JSON a browser would
// post back, from ES256 keys it keeps in memory, with attestation "none"
// encoded in CBOR. Every part a relying party checks can be made wrong on
// purpose through Tweak: the origin, the RP ID whose hash is signed, the
// challenge, the signing key, the signature counter, the user handle.
//
// It depends on github.com/fxamacker/cbor/v2 for the CTAP2 canonical
// CBOR of the attestation object and the COSE key, the encoding the
// relying party's library decodes.
package webauthntest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Authenticator flags (WebAuthn §6.1).
const (
	flagUP = 0x01
	flagUV = 0x04
	flagAT = 0x40
)

// Credential is a passkey the authenticator holds.
type Credential struct {
	ID         []byte
	Key        *ecdsa.PrivateKey
	UserHandle []byte
	RPID       string
	Counter    uint32
}

// Authenticator holds passkeys, like a security key or a phone.
type Authenticator struct {
	// Origin is the origin the client data names: the page's origin as
	// the browser sees it.
	Origin string

	mu    sync.Mutex
	creds []*Credential
}

// New returns an authenticator for pages at origin.
func New(origin string) *Authenticator {
	return &Authenticator{Origin: origin}
}

// Tweak makes one answer wrong on purpose; the zero value changes
// nothing.
type Tweak struct {
	Origin     string            // the client data's origin instead of the authenticator's
	RPID       string            // hash this RP ID into the authenticator data instead of the options' one
	Challenge  []byte            // sign over this challenge instead of the options' one
	Key        *ecdsa.PrivateKey // sign with this key instead of the credential's
	Counter    *uint32           // send this signature counter instead of the next one
	Credential *Credential       // answer with this credential (another authenticator's, say)
	UserHandle []byte            // return this user handle instead of the credential's
}

// Credentials are the passkeys the authenticator holds, oldest first.
func (a *Authenticator) Credentials() []*Credential {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*Credential(nil), a.creds...)
}

// creationOptions is what Create reads of PublicKeyCredentialCreationOptionsJSON.
type creationOptions struct {
	Challenge string `json:"challenge"`
	RP        struct {
		ID string `json:"id"`
	} `json:"rp"`
	User struct {
		ID string `json:"id"`
	} `json:"user"`
	ExcludeCredentials []struct {
		ID string `json:"id"`
	} `json:"excludeCredentials"`
}

// Create makes a passkey for the options (the publicKey member of the
// relying party's answer) and returns the RegistrationResponseJSON.
func (a *Authenticator) Create(options []byte, tw Tweak) ([]byte, *Credential, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, nil, fmt.Errorf("reading creation options: %w", err)
	}
	challenge, err := b64(o.Challenge)
	if err != nil {
		return nil, nil, fmt.Errorf("challenge: %w", err)
	}
	handle, err := b64(o.User.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("user.id: %w", err)
	}
	for _, ex := range o.ExcludeCredentials {
		for _, c := range a.Credentials() {
			if ex.ID == enc(c.ID) {
				return nil, nil, errors.New("InvalidStateError: the authenticator already holds an excluded credential")
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	id := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return nil, nil, err
	}
	cred := &Credential{ID: id, Key: key, UserHandle: handle, RPID: o.RP.ID}
	cose, err := coseKey(&key.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	var attested []byte
	attested = append(attested, make([]byte, 16)...) // AAGUID: zero, as with attestation none
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(id)))
	attested = append(attested, id...)
	attested = append(attested, cose...)
	authData := authenticatorData(pick(tw.RPID, o.RP.ID), flagUP|flagUV|flagAT, 0, attested)
	attObj, err := canonical().Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData})
	if err != nil {
		return nil, nil, err
	}
	clientData := a.clientData("webauthn.create", pickBytes(tw.Challenge, challenge), tw.Origin)
	resp := map[string]any{
		"id":    enc(id),
		"rawId": enc(id),
		"type":  "public-key",
		"response": map[string]any{
			"clientDataJSON":    enc(clientData),
			"attestationObject": enc(attObj),
			"transports":        []string{"internal"},
		},
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return nil, nil, err
	}
	a.mu.Lock()
	a.creds = append(a.creds, cred)
	a.mu.Unlock()
	return b, cred, nil
}

// requestOptions is what Get reads of PublicKeyCredentialRequestOptionsJSON.
type requestOptions struct {
	Challenge        string `json:"challenge"`
	RPID             string `json:"rpId"`
	AllowCredentials []struct {
		ID string `json:"id"`
	} `json:"allowCredentials"`
}

// Get signs in with a passkey for the options (the publicKey member of the
// relying party's answer) and returns the AuthenticationResponseJSON. It
// uses the newest passkey of the options' RP ID that the allow list names
// (any, when the list is empty), unless the tweak names one.
func (a *Authenticator) Get(options []byte, tw Tweak) ([]byte, error) {
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("reading request options: %w", err)
	}
	challenge, err := b64(o.Challenge)
	if err != nil {
		return nil, fmt.Errorf("challenge: %w", err)
	}
	cred := tw.Credential
	if cred == nil {
		cred = a.pick(o)
	}
	if cred == nil {
		return nil, errors.New("NotAllowedError: no passkey for this site")
	}
	a.mu.Lock()
	cred.Counter++
	counter := cred.Counter
	a.mu.Unlock()
	if tw.Counter != nil {
		counter = *tw.Counter
	}
	authData := authenticatorData(pick(tw.RPID, cred.RPID), flagUP|flagUV, counter, nil)
	clientData := a.clientData("webauthn.get", pickBytes(tw.Challenge, challenge), tw.Origin)
	cdHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(append([]byte(nil), authData...), cdHash[:]...))
	key := cred.Key
	if tw.Key != nil {
		key = tw.Key
	}
	sig, err := ecdsa.SignASN1(rand.Reader, key, digest[:])
	if err != nil {
		return nil, err
	}
	handle := cred.UserHandle
	if tw.UserHandle != nil {
		handle = tw.UserHandle
	}
	resp := map[string]any{
		"id":    enc(cred.ID),
		"rawId": enc(cred.ID),
		"type":  "public-key",
		"response": map[string]any{
			"clientDataJSON":    enc(clientData),
			"authenticatorData": enc(authData),
			"signature":         enc(sig),
			"userHandle":        enc(handle),
		},
		"authenticatorAttachment": "platform",
		"clientExtensionResults":  map[string]any{},
	}
	return json.Marshal(resp)
}

func (a *Authenticator) pick(o requestOptions) *Credential {
	creds := a.Credentials()
	for i := len(creds) - 1; i >= 0; i-- {
		c := creds[i]
		if c.RPID != o.RPID {
			continue
		}
		if len(o.AllowCredentials) == 0 {
			return c
		}
		for _, al := range o.AllowCredentials {
			if al.ID == enc(c.ID) {
				return c
			}
		}
	}
	return nil
}

func (a *Authenticator) clientData(typ string, challenge []byte, origin string) []byte {
	b, _ := json.Marshal(map[string]any{
		"type":        typ,
		"challenge":   enc(challenge),
		"origin":      pick(origin, a.Origin),
		"crossOrigin": false,
	})
	return b
}

// authenticatorData is rpIdHash, flags, signCount and the attested data.
func authenticatorData(rpID string, flags byte, counter uint32, attested []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	d := append(h[:], flags)
	d = binary.BigEndian.AppendUint32(d, counter)
	return append(d, attested...)
}

// coseKey is an ES256 public key as a COSE_Key (RFC 9053).
func coseKey(pub *ecdsa.PublicKey) ([]byte, error) {
	raw, err := pub.Bytes() // 0x04 || X || Y
	if err != nil {
		return nil, err
	}
	return canonical().Marshal(map[int]any{
		1:  2,  // kty: EC2
		3:  -7, // alg: ES256
		-1: 1,  // crv: P-256
		-2: raw[1:33],
		-3: raw[33:65],
	})
}

func canonical() cbor.EncMode {
	em, err := cbor.CTAP2EncOptions().EncMode()
	if err != nil {
		panic(err) // fixed options: cannot fail
	}
	return em
}

// NewKey returns a fresh ES256 key, to sign with a key the relying party
// does not know.
func NewKey() *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func b64(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

func pick(s, def string) string {
	if s != "" {
		return s
	}
	return def
}

func pickBytes(b, def []byte) []byte {
	if b != nil {
		return b
	}
	return def
}
