// Package totp implements time-based one-time passwords (RFC 6238) for
// authenticator apps, and the recovery codes that go with them. It holds
// the configuration (issuer, digits, period, algorithm, skew), the
// verification of a typed code, new secrets and their encryption at rest,
// the enrollment material (the otpauth URI, its QR code as a PNG, the
// secret grouped for reading) and recovery codes with their keyed hashes.
// Like the other authenticators it knows nothing about HTTP routing or the
// store: the handler (package caddymfa) decides who enrolls and verifies,
// and keeps the state.
//
// # Replay guard
//
// RFC 6238 §5.2 requires that a code be accepted only once. Verify takes
// the step of the last code accepted for the user (NoStep if none),
// refuses any code of a step at or before it, and returns the step it
// matched. The caller must store that step as the user's new last step in
// one atomic compare-and-set against the value it passed in, and treat a
// lost race as a failure; otherwise two concurrent submissions of one code
// could both succeed. Recovery codes follow the same rule: the matched
// hash is removed in the operation that accepts it.
//
// # Recovery codes
//
// NewRecoveryCodes makes the codes a user gets with an app, for the day
// the phone is lost: 80 bits each from crypto/rand, written as
// "abcd-efgh-ijkl-mnop". Only HashRecoveryCode of each is stored;
// MatchRecoveryCode finds the one a user typed, in constant time per
// code, and the caller removes it so it works once.
//
// # Enrollment policies
//
// Config.Enroll says who may add an app (the handler enforces it):
// EnrollVerified after passing another factor, EnrollFirstLogin after the
// first factor alone for a user with no app yet (trust on first use),
// EnrollOff nobody by themselves.
//
// # Secrets and keys
//
// Secrets are 160 bits from crypto/rand, written in base32 without
// padding. Seal and Open encrypt them at rest with AES-256-GCM; the
// recovery-code hashes are HMAC-SHA256. Both keys are derived from the
// master key (secret_key) with HMAC-SHA256 and a label per purpose, so
// neither can stand in for the other or for the handler's own keys.
//
// # Dependencies
//
// Code generation and the QR code come from github.com/pquerna/otp, the
// widely used Go TOTP library: it
// implements RFC 4226 and RFC 6238 for SHA-1, SHA-256 and SHA-512 and
// renders key URIs as QR codes through github.com/boombuler/barcode. Its
// tests are not ours to trust blindly, so this package's tests check it
// against the RFC vectors and an independent implementation. The
// comparison, the skew window, the replay guard and the URI encoding are
// done here: pquerna/otp compares codes in constant time but cannot
// report which step matched, and its URI builder does not escape ':' in
// labels.
package totp
