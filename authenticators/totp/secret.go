package totp

import (
	"encoding/base32"
	"fmt"
	"strings"
)

// MinSecretBytes is the shortest secret Verify accepts: RFC 4226 §4
// requires at least 128 bits. NewSecret makes longer ones.
const MinSecretBytes = 16

// b32 is the alphabet of secrets: RFC 4648 base32 without padding, as
// otpauth URIs carry it.
var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// canonicalSecret checks that secret is base32 of at least MinSecretBytes
// and returns it upper-case, without padding or spaces.
func canonicalSecret(secret string) (string, error) {
	s := strings.ToUpper(strings.TrimRight(strings.ReplaceAll(secret, " ", ""), "="))
	raw, err := b32.DecodeString(s)
	if err != nil {
		return "", fmt.Errorf("%w: not base32", ErrInvalidSecret)
	}
	if len(raw) < MinSecretBytes {
		return "", fmt.Errorf("%w: %d bits, at least %d required", ErrInvalidSecret, 8*len(raw), 8*MinSecretBytes)
	}
	return s, nil
}
