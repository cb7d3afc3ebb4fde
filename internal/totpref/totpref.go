// Package totpref computes TOTP codes (RFC 6238) with nothing but the
// standard library, so tests can check the handler's authenticator, built
// on github.com/pquerna/otp, against an independent implementation, as an
// authenticator app would.
package totpref

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash"
	"strings"
	"time"
)

// HOTP is RFC 4226 §5.3: the code of counter under key.
func HOTP(key []byte, counter uint64, digits int, algorithm string) string {
	var h func() hash.Hash
	switch strings.ToLower(algorithm) {
	case "", "sha1":
		h = sha1.New
	case "sha256":
		h = sha256.New
	case "sha512":
		h = sha512.New
	default:
		panic("totpref: unknown algorithm " + algorithm)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], counter)
	mac := hmac.New(h, key)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	bin := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	mod := uint32(1)
	for range digits {
		mod *= 10
	}
	return fmt.Sprintf("%0*d", digits, bin%mod)
}

// Code is the 6-digit SHA-1 code of a base32 secret (spaces and case
// ignored, as apps do) for the 30-second step that holds t plus offset
// steps.
func Code(secret string, t time.Time, offset int64) string {
	return CodeWith(secret, t, offset, 30*time.Second, 6, "sha1")
}

// CodeWith is Code for any period, length and algorithm.
func CodeWith(secret string, t time.Time, offset int64, period time.Duration, digits int, algorithm string) string {
	key, err := Key(secret)
	if err != nil {
		panic(err)
	}
	step := t.Unix()/int64(period/time.Second) + offset
	return HOTP(key, uint64(step), digits, algorithm)
}

// Key decodes a base32 secret as apps read it: spaces dropped, any case,
// padding optional.
func Key(secret string) ([]byte, error) {
	s := strings.ToUpper(strings.ReplaceAll(secret, " ", ""))
	s = strings.TrimRight(s, "=")
	return base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
}
