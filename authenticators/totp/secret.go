package totp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"errors"
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

// SecretBytes is the length of secrets made by NewSecret: 160 bits, the
// length RFC 4226 §4 recommends and every authenticator app accepts.
const SecretBytes = 20

// MinKeyBytes is the shortest master key Seal, Open and HashRecoveryCode
// accept.
const MinKeyBytes = 32

// Errors of Seal, Open and HashRecoveryCode.
var (
	// ErrShortKey is returned for a master key under MinKeyBytes.
	ErrShortKey = errors.New("totp: master key too short")
	// ErrSealed is returned by Open when a sealed secret is malformed,
	// was tampered with, or was sealed under another key.
	ErrSealed = errors.New("totp: sealed secret does not open")
)

// sealedPrefix marks the format of sealed secrets, so it can change.
const sealedPrefix = "v1."

// NewSecret returns a new secret of SecretBytes from crypto/rand, encoded
// as base32 without padding (32 characters), as otpauth URIs carry it.
func NewSecret() (string, error) {
	raw := make([]byte, SecretBytes)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("reading random secret: %w", err)
	}
	return b32.EncodeToString(raw), nil
}

// GroupSecret formats a secret for reading and typing: upper case, in
// groups of four separated by spaces ("ABCD EFGH IJKL ...").
func GroupSecret(secret string) string {
	s := strings.ToUpper(strings.TrimRight(strings.ReplaceAll(secret, " ", ""), "="))
	var b strings.Builder
	b.Grow(len(s) + len(s)/4)
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// deriveKey derives the key of one purpose from the master key
// (secret_key) with HMAC-SHA256, so a key is never used for two purposes.
func deriveKey(master []byte, label string) ([]byte, error) {
	if len(master) < MinKeyBytes {
		return nil, fmt.Errorf("%w: %d bytes, at least %d required", ErrShortKey, len(master), MinKeyBytes)
	}
	m := hmac.New(sha256.New, master)
	m.Write([]byte("caddy-mfa/" + label))
	return m.Sum(nil), nil
}

// aead returns AES-256-GCM under the secret-sealing key derived from master.
func aead(master []byte) (cipher.AEAD, error) {
	key, err := deriveKey(master, "totp-secret")
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("creating cipher: %w", err)
	}
	return cipher.NewGCM(block)
}

// Seal encrypts a secret for storage with AES-256-GCM, under a key derived
// from the master key and a random nonce. The result is printable:
// "v1." followed by base64url of nonce and ciphertext.
func Seal(master []byte, secret string) (string, error) {
	g, err := aead(master)
	if err != nil {
		return "", err
	}
	buf := make([]byte, g.NonceSize(), g.NonceSize()+len(secret)+g.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("reading random nonce: %w", err)
	}
	buf = g.Seal(buf, buf, []byte(secret), []byte(sealedPrefix))
	return sealedPrefix + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open decrypts what Seal returned. Any malformed, altered or foreign
// input gives an error wrapping ErrSealed.
func Open(master []byte, sealed string) (string, error) {
	g, err := aead(master)
	if err != nil {
		return "", err
	}
	rest, ok := strings.CutPrefix(sealed, sealedPrefix)
	if !ok {
		return "", fmt.Errorf("%w: unknown format", ErrSealed)
	}
	buf, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(buf) < g.NonceSize()+g.Overhead() {
		return "", fmt.Errorf("%w: malformed", ErrSealed)
	}
	plain, err := g.Open(nil, buf[:g.NonceSize()], buf[g.NonceSize():], []byte(sealedPrefix))
	if err != nil {
		return "", fmt.Errorf("%w: authentication failed", ErrSealed)
	}
	return string(plain), nil
}
