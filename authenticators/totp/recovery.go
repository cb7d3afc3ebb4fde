package totp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"strings"
)

// Recovery code shape: RecoveryCodeBytes random bytes (80 bits) written as
// 16 lower-case base32 characters in groups of four, "abcd-efgh-ijkl-mnop".
const (
	RecoveryCodeBytes = 10
	MinRecoveryCodes  = 10
	MaxRecoveryCodes  = 100
	recoveryCodeChars = RecoveryCodeBytes * 8 / 5
	maxRecoveryInput  = 64
)

// NewRecoveryCodes returns n recovery codes, MinRecoveryCodes to
// MaxRecoveryCodes, each of 80 bits from crypto/rand. They are shown to
// the user once; the store keeps only HashRecoveryCode of each.
func NewRecoveryCodes(n int) ([]string, error) {
	if n < MinRecoveryCodes || n > MaxRecoveryCodes {
		return nil, fmt.Errorf("totp: recovery code count %d outside %d..%d", n, MinRecoveryCodes, MaxRecoveryCodes)
	}
	codes := make([]string, 0, n)
	seen := make(map[string]bool, n)
	raw := make([]byte, RecoveryCodeBytes)
	for len(codes) < n {
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("reading random recovery code: %w", err)
		}
		s := strings.ToLower(b32.EncodeToString(raw))
		if seen[s] {
			continue
		}
		seen[s] = true
		codes = append(codes, s[0:4]+"-"+s[4:8]+"-"+s[8:12]+"-"+s[12:16])
	}
	return codes, nil
}

// normalizeRecoveryCode turns what a user typed into the 16 characters of
// a recovery code: case is ignored, dashes and spaces are dropped, and
// anything outside the base32 alphabet or of the wrong length is refused.
func normalizeRecoveryCode(input string) (string, bool) {
	if len(input) > maxRecoveryInput {
		return "", false
	}
	var b strings.Builder
	b.Grow(recoveryCodeChars)
	for i := 0; i < len(input); i++ {
		c := input[i]
		switch {
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
		case c >= 'a' && c <= 'z', c >= '2' && c <= '7':
		case c == '-' || c == ' ':
			continue
		default:
			return "", false
		}
		if b.Len() == recoveryCodeChars {
			return "", false
		}
		b.WriteByte(c)
	}
	if b.Len() != recoveryCodeChars {
		return "", false
	}
	return b.String(), true
}

// HashRecoveryCode returns what the store keeps of a recovery code:
// HMAC-SHA256 of the normalised code under a key derived from the master
// key, so a copy of the store yields no usable code.
func HashRecoveryCode(master []byte, code string) ([]byte, error) {
	norm, ok := normalizeRecoveryCode(code)
	if !ok {
		return nil, fmt.Errorf("totp: malformed recovery code")
	}
	key, err := deriveKey(master, "recovery-code")
	if err != nil {
		return nil, err
	}
	return recoveryMAC(key, norm), nil
}

func recoveryMAC(key []byte, norm string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(norm))
	return m.Sum(nil)
}

// MatchRecoveryCode compares what a user typed with the stored hashes and
// returns the index of the one it matches. The input is normalised first
// (case, dashes, spaces); every hash is compared in constant time, whether
// or not an earlier one matched. The caller removes the matched hash in
// the same atomic store operation that accepts it, so each code works
// once. A malformed input is no match; an error means the key is unusable.
func MatchRecoveryCode(master []byte, input string, hashes [][]byte) (index int, ok bool, err error) {
	key, err := deriveKey(master, "recovery-code")
	if err != nil {
		return -1, false, err
	}
	norm, valid := normalizeRecoveryCode(input)
	sum := recoveryMAC(key, norm)
	index = -1
	for i, h := range hashes {
		if subtle.ConstantTimeCompare(sum, h) == 1 && valid && index < 0 {
			index = i
		}
	}
	return index, index >= 0, nil
}
