package caddymfa

import (
	"strings"
	"testing"
)

// SECURITY.md K51: first-factor names are kept exactly; only the lockout
// name folds them.
func TestExactUser(t *testing.T) {
	for _, tt := range []struct {
		in   string
		ok   bool
		lock string
	}{
		{"alice", true, "alice"},
		{"Alice", true, "alice"},
		{" alice", true, "alice"},
		{"ａｌｉｃｅ", true, "alice"},
		{"Alice@Example.COM", true, "alice@example.com"},
		{"", false, ""},
		{"   ", false, ""},
		{"a/b", false, ""},
		{"a\nb", false, ""},
		{"a\x00b", false, ""},
		{"\xff", false, ""},
		{strings.Repeat("a", maxUserName+1), false, ""},
	} {
		got, ok := exactUser(tt.in)
		if ok != tt.ok || (ok && got != tt.in) {
			t.Errorf("exactUser(%q) = %q, %v; want it unchanged, %v", tt.in, got, ok, tt.ok)
		}
		if ok && lockName(got) != tt.lock {
			t.Errorf("lockName(%q) = %q, want %q", got, lockName(got), tt.lock)
		}
	}
}

func FuzzExactUser(f *testing.F) {
	for _, s := range []string{"alice", " Alice ", "ａｌｉｃｅ", "a/b", "\x00", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got, ok := exactUser(name)
		if !ok {
			return
		}
		if got != name {
			t.Fatalf("exactUser changed %q to %q", name, got)
		}
		if strings.ContainsAny(got, "/\x00\n\r") {
			t.Fatalf("exact name %q holds a key separator or control character", got)
		}
		if l := lockName(got); lockName(l) != l {
			t.Fatalf("lockName is not idempotent on %q", got)
		}
	})
}
