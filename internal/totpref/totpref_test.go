package totpref

import (
	"testing"
	"time"
)

// TestRFC6238 checks a few RFC 6238 Appendix B vectors, so the reference
// itself is known good.
func TestRFC6238(t *testing.T) {
	seed := []byte("12345678901234567890")
	tests := []struct {
		unix int64
		want string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{2000000000, "69279037"},
	}
	for _, tt := range tests {
		if got := HOTP(seed, uint64(tt.unix/30), 8, "sha1"); got != tt.want {
			t.Errorf("T=%d: %s, want %s", tt.unix, got, tt.want)
		}
	}
	// The same seed through Code: base32, grouped, lower case.
	secret := "gezd gnbv gy3t qojq gezd gnbv gy3t qojq"
	if got := Code(secret, time.Unix(59, 0), 0); got != "287082" {
		t.Errorf("Code = %s, want 287082", got)
	}
	if got := Code(secret, time.Unix(29, 0), 1); got != "287082" {
		t.Errorf("Code with offset = %s, want 287082", got)
	}
}
