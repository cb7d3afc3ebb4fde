package totp

import (
	"encoding/base32"

	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// refHOTP is an independent RFC 4226 §5.3 implementation on crypto/hmac
// (internal/totpref), used to check the package (built on pquerna/otp)
// against another one.
func refHOTP(key []byte, counter uint64, digits int, alg string) string {
	return totpref.HOTP(key, counter, digits, alg)
}

// refTOTP is RFC 6238 §4.2 over refHOTP.
func refTOTP(key []byte, unix int64, period int64, digits int, alg string) string {
	return refHOTP(key, uint64(unix/period), digits, alg)
}

// b32raw encodes key as a secret the package accepts.
func b32raw(key []byte) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key)
}
