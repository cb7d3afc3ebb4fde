package totp

import (
	"bytes"
	"errors"
	"regexp"
	"strings"
	"testing"
)

func TestNewRecoveryCodes(t *testing.T) {
	shape := regexp.MustCompile(`^[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}-[a-z2-7]{4}$`)
	codes, err := NewRecoveryCodes(10)
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 {
		t.Fatalf("%d codes, want 10", len(codes))
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if !shape.MatchString(c) {
			t.Fatalf("code %q does not look like abcd-efgh-ijkl-mnop", c)
		}
		// 16 base32 characters carry 80 bits, over the 64 required.
		raw, err := b32.DecodeString(strings.ToUpper(strings.ReplaceAll(c, "-", "")))
		if err != nil || len(raw)*8 < 64 {
			t.Fatalf("code %q: %d bits, %v", c, len(raw)*8, err)
		}
		if seen[c] {
			t.Fatalf("code %q repeated", c)
		}
		seen[c] = true
	}
	for _, n := range []int{-1, 0, 9, 101} {
		if _, err := NewRecoveryCodes(n); err == nil {
			t.Errorf("NewRecoveryCodes(%d) accepted", n)
		}
	}
	if codes, err := NewRecoveryCodes(100); err != nil || len(codes) != 100 {
		t.Errorf("NewRecoveryCodes(100) = %d codes, %v", len(codes), err)
	}
}

func TestRecoveryCodeMatch(t *testing.T) {
	codes, err := NewRecoveryCodes(10)
	if err != nil {
		t.Fatal(err)
	}
	hashes := make([][]byte, len(codes))
	for i, c := range codes {
		if hashes[i], err = HashRecoveryCode(masterKey, c); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(hashes[i], []byte(c)) || len(hashes[i]) != 32 {
			t.Fatalf("hash of %q looks wrong: %x", c, hashes[i])
		}
	}
	code := codes[3]
	plain := strings.ReplaceAll(code, "-", "")
	for name, in := range map[string]string{
		"as shown":     code,
		"upper case":   strings.ToUpper(code),
		"no dashes":    plain,
		"spaces":       " " + plain[:4] + " " + plain[4:8] + " " + plain[8:] + " ",
		"mixed":        strings.ToUpper(plain[:8]) + "--" + plain[8:],
		"extra dashes": "-" + code + "-",
	} {
		t.Run(name, func(t *testing.T) {
			i, ok, err := MatchRecoveryCode(masterKey, in, hashes)
			if err != nil || !ok || i != 3 {
				t.Fatalf("Match(%q) = %d, %v, %v; want 3, true, nil", in, i, ok, err)
			}
		})
	}

	other, _ := NewRecoveryCodes(10)
	for name, in := range map[string]string{
		"empty":        "",
		"dashes":       "----",
		"other code":   other[0],
		"short":        plain[:15],
		"long":         plain + "a",
		"nul":          plain[:8] + "\x00" + plain[8:],
		"digit 0":      plain[:15] + "0",
		"non-ascii":    plain[:15] + "ä",
		"fullwidth":    strings.ToUpper(plain[:15]) + "Ａ",
		"one megabyte": strings.Repeat(plain, 1<<16),
	} {
		t.Run(name, func(t *testing.T) {
			if i, ok, err := MatchRecoveryCode(masterKey, in, hashes); ok || err != nil || i != -1 {
				t.Fatalf("Match(%q) = %d, %v, %v; want -1, false, nil", in, i, ok, err)
			}
		})
	}

	t.Run("used code removed", func(t *testing.T) {
		rest := append(append([][]byte{}, hashes[:3]...), hashes[4:]...)
		if _, ok, _ := MatchRecoveryCode(masterKey, code, rest); ok {
			t.Fatal("matched after removal")
		}
	})
	t.Run("other key", func(t *testing.T) {
		if _, ok, _ := MatchRecoveryCode(otherKey, code, hashes); ok {
			t.Fatal("matched under another key")
		}
	})
	t.Run("no hashes", func(t *testing.T) {
		if _, ok, err := MatchRecoveryCode(masterKey, code, nil); ok || err != nil {
			t.Fatalf("ok %v, err %v", ok, err)
		}
	})
	t.Run("short key", func(t *testing.T) {
		if _, _, err := MatchRecoveryCode(masterKey[:8], code, hashes); !errors.Is(err, ErrShortKey) {
			t.Fatalf("err %v, want ErrShortKey", err)
		}
		if _, err := HashRecoveryCode(nil, code); !errors.Is(err, ErrShortKey) {
			t.Fatalf("err %v, want ErrShortKey", err)
		}
	})
	t.Run("malformed hash input", func(t *testing.T) {
		if _, err := HashRecoveryCode(masterKey, "nope"); err == nil {
			t.Fatal("hashed a malformed code")
		}
	})
	t.Run("separate from sealing key", func(t *testing.T) {
		a, _ := deriveKey(masterKey, "recovery-code")
		b, _ := deriveKey(masterKey, "totp-secret")
		if bytes.Equal(a, b) {
			t.Fatal("one key for two purposes")
		}
	})
}
