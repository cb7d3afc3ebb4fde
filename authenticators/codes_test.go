package authenticators

import (
	"strings"
	"testing"
)

func TestNewCodeShapeAndSpread(t *testing.T) {
	for length := MinCodeLength; length <= MaxCodeLength; length++ {
		code, err := NewCode(length)
		if err != nil {
			t.Fatal(err)
		}
		if len(code) != length || strings.Trim(code, "0123456789") != "" {
			t.Fatalf("NewCode(%d) = %q", length, code)
		}
	}
	for _, bad := range []int{0, 3, 11} {
		if _, err := NewCode(bad); err == nil {
			t.Errorf("NewCode(%d): want error", bad)
		}
	}
	// Every digit must show up in every position over enough samples; a
	// biased or constant generator fails this.
	var seen [6][10]int
	for i := 0; i < 2000; i++ {
		code, _ := NewCode(6)
		for p := range 6 {
			seen[p][code[p]-'0']++
		}
	}
	for p := range 6 {
		for d := range 10 {
			if seen[p][d] < 120 || seen[p][d] > 290 {
				t.Errorf("position %d digit %d seen %d times in 2000 codes", p, d, seen[p][d])
			}
		}
	}
}

func TestNormalizeCodeRejectsOddInput(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"123456", "123456", true},
		{" 123 456 ", "123456", true},
		{"123-456", "123456", true},
		{"", "", false},
		{"      ", "", false},
		{"12345", "", false},
		{"1234567", "", false},
		{"１２３４５６", "", false},
		{"+123456", "", false},
		{"-123456", "", false},
		{"123456-", "", false},
		{"123--456", "", false},
		{"123- 456", "", false},
		{"123456\x00", "", false},
		{"12345\n6", "", false},
		{"٣٣٣٣٣٣", "", false},
		{"0x1234", "", false},
		{strings.Repeat("1", 1<<20), "", false},
	}
	for _, tt := range tests {
		got, ok := NormalizeCode(tt.in, 6)
		if got != tt.want || ok != tt.ok {
			t.Errorf("NormalizeCode(%.20q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func FuzzNormalizeCode(f *testing.F) {
	for _, s := range []string{"123456", " 1 2 3 4 5 6", "１２３４５６", "+1", "\x00"} {
		f.Add(s, 6)
	}
	f.Fuzz(func(t *testing.T, in string, length int) {
		if length < MinCodeLength || length > MaxCodeLength {
			return
		}
		got, ok := NormalizeCode(in, length)
		if !ok {
			return
		}
		if len(got) != length || strings.Trim(got, "0123456789") != "" {
			t.Fatalf("NormalizeCode(%q, %d) = %q", in, length, got)
		}
	})
}
