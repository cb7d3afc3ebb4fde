package authenticators

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"strings"
)

// Code lengths the configuration accepts.
const (
	MinCodeLength = 4
	MaxCodeLength = 10
)

// MaxCodeInput is the longest code input NormalizeCode looks at; anything
// longer is refused without further work.
const MaxCodeInput = 64

// NewCode returns a numeric code of length digits drawn uniformly from
// crypto/rand: rand.Int rejects out-of-range samples, so there is no modulo
// bias.
func NewCode(length int) (string, error) {
	if length < MinCodeLength || length > MaxCodeLength {
		return "", fmt.Errorf("code length %d outside %d..%d", length, MinCodeLength, MaxCodeLength)
	}
	limit := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(length)), nil)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return "", fmt.Errorf("reading random code: %w", err)
	}
	return fmt.Sprintf("%0*s", length, n.String()), nil
}

// NormalizeCode turns what a user typed into a code of exactly length ASCII
// digits. It drops ASCII spaces, and dashes between two digits (codes are
// often shown grouped, "123 456", "123-456"), and refuses everything else:
// signs, non-ASCII digits such as fullwidth ones, control characters, the
// wrong length.
func NormalizeCode(input string, length int) (string, bool) {
	if len(input) > MaxCodeInput {
		return "", false
	}
	var b strings.Builder
	b.Grow(length)
	for i := 0; i < len(input); i++ {
		c := input[i]
		switch {
		case c >= '0' && c <= '9':
			if b.Len() == length {
				return "", false
			}
			b.WriteByte(c)
		case c == ' ':
			// spaces anywhere: "123 456", and around the code
		case c == '-':
			// a dash only between digits: "123-456"
			if b.Len() == 0 || b.Len() == length || i+1 == len(input) || input[i+1] < '0' || input[i+1] > '9' {
				return "", false
			}
		default:
			return "", false
		}
	}
	if b.Len() != length {
		return "", false
	}
	return b.String(), true
}
