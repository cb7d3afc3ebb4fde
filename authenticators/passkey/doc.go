// Package passkey implements passkeys (WebAuthn) as a factor: the
// configuration of the passkey block, and the relying party that makes
// the options of a registration or a sign-in and checks what the
// authenticator answers. Like the other authenticators it knows nothing
// about HTTP routing or the store: the handler (package caddymfa) decides
// who may register and sign in, keeps the credentials and the pending
// ceremonies, and counts failures in the lockout.
//
// # Relying party
//
// The relying party ID is the host name of base_url and the only origin
// accepted is base_url's scheme and host; New refuses to build one
// without base_url, so neither ever comes from a request's Host or
// X-Forwarded-* headers. The authenticator signs over the hash of the RP
// ID and the client data holds the origin, so a passkey made for or used
// on another site is refused.
//
// # Ceremonies
//
// Begin* return the options for navigator.credentials (WebAuthn Level 3
// JSON, binary fields in base64url without padding) and an opaque state
// that the caller keeps server-side, bound to the flow or session that
// asked, and hands back exactly once to Finish*: the state holds the
// challenge, so a response signed over another challenge (replayed, or
// made for another flow) is refused.
//
// # Signature counters
//
// FinishLogin refuses an assertion whose signature counter is not above
// the one stored (unless both are zero, as for authenticators that keep
// no counter) with a *CounterError: a counter that goes backwards means
// the credential may have been cloned.
//
// # Dependencies
//
// github.com/go-webauthn/webauthn does the verification (client data,
// RP ID hash, flags, COSE keys, attestation formats); writing that again
// would be the riskiest code of the project. None of its types appear in
// this package's API: credentials are kept as Credential, ceremonies as
// opaque bytes.
package passkey
