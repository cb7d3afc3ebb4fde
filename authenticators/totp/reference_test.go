package totp

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"hash"
)

// refHOTP is an independent RFC 4226 §5.3 implementation on crypto/hmac,
// used to check the package (built on pquerna/otp) against another one.
func refHOTP(key []byte, counter uint64, digits int, alg string) string {
	var h func() hash.Hash
	switch alg {
	case "sha1":
		h = sha1.New
	case "sha256":
		h = sha256.New
	case "sha512":
		h = sha512.New
	default:
		panic("refHOTP: unknown algorithm " + alg)
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

// refTOTP is RFC 6238 §4.2 over refHOTP.
func refTOTP(key []byte, unix int64, period int64, digits int, alg string) string {
	return refHOTP(key, uint64(unix/period), digits, alg)
}

// b32raw encodes key as a secret the package accepts.
func b32raw(key []byte) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(key)
}
