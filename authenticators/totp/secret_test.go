package totp

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewSecret(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		s, err := NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 32 || strings.ContainsAny(s, "= ") || strings.ToUpper(s) != s {
			t.Fatalf("secret %q: want 32 upper-case base32 characters without padding", s)
		}
		raw, err := b32.DecodeString(s)
		if err != nil || len(raw) < 20 {
			t.Fatalf("secret %q decodes to %d bytes, %v; want at least 160 bits", s, len(raw), err)
		}
		if seen[s] {
			t.Fatalf("secret %q repeated", s)
		}
		seen[s] = true
	}
	// A fresh secret works with Verify and the reference implementation.
	s, _ := NewSecret()
	raw, _ := b32.DecodeString(s)
	c := config(t, 6, "sha1", 1)
	now := time.Now()
	if _, ok, err := c.Verify(s, now, refTOTP(raw, now.Unix(), 30, 6, "sha1"), NoStep); !ok || err != nil {
		t.Fatalf("fresh secret: %v, %v", ok, err)
	}
}

func TestGroupSecret(t *testing.T) {
	for in, want := range map[string]string{
		"":                                 "",
		"abc":                              "ABC",
		"ABCDEFGH":                         "ABCD EFGH",
		"ABCDEFGHIJ==":                     "ABCD EFGH IJ",
		"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ": "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ",
		"ABCD EFGH":                        "ABCD EFGH",
	} {
		if got := GroupSecret(in); got != want {
			t.Errorf("GroupSecret(%q) = %q, want %q", in, got, want)
		}
	}
	// What GroupSecret shows is accepted back as the secret.
	s, _ := NewSecret()
	if got, err := canonicalSecret(GroupSecret(s)); err != nil || got != s {
		t.Fatalf("grouped secret does not read back: %q, %v", got, err)
	}
}

var (
	masterKey = bytes.Repeat([]byte{0x42}, 32)
	otherKey  = bytes.Repeat([]byte{0x43}, 32)
)

func TestSealOpen(t *testing.T) {
	secret, _ := NewSecret()
	sealed, err := Seal(masterKey, secret)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, secret) {
		t.Fatal("sealed value contains the secret")
	}
	got, err := Open(masterKey, sealed)
	if err != nil || got != secret {
		t.Fatalf("Open = %q, %v; want %q", got, err, secret)
	}
	again, _ := Seal(masterKey, secret)
	if again == sealed {
		t.Fatal("two seals of one secret are equal: nonce not random")
	}

	if _, err := Open(otherKey, sealed); !errors.Is(err, ErrSealed) {
		t.Errorf("wrong key: %v, want ErrSealed", err)
	}

	raw, _ := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(sealed, sealedPrefix))
	for i := range raw {
		tampered := bytes.Clone(raw)
		tampered[i] ^= 0x01
		if _, err := Open(masterKey, sealedPrefix+base64.RawURLEncoding.EncodeToString(tampered)); !errors.Is(err, ErrSealed) {
			t.Fatalf("flipped bit in byte %d: %v, want ErrSealed", i, err)
		}
	}
	for name, in := range map[string]string{
		"empty":      "",
		"no prefix":  strings.TrimPrefix(sealed, sealedPrefix),
		"v2":         "v2." + strings.TrimPrefix(sealed, sealedPrefix),
		"not base64": sealedPrefix + "!!!",
		"short":      sealedPrefix + "AAAA",
		"truncated":  sealed[:len(sealed)-2],
		"extended":   sealed + "AA",
	} {
		if _, err := Open(masterKey, in); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: %v, want ErrSealed", name, err)
		}
	}

	if _, err := Seal(masterKey[:31], secret); !errors.Is(err, ErrShortKey) {
		t.Errorf("short key Seal: %v, want ErrShortKey", err)
	}
	if _, err := Open(nil, sealed); !errors.Is(err, ErrShortKey) {
		t.Errorf("nil key Open: %v, want ErrShortKey", err)
	}
}
