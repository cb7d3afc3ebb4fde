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

// SECURITY.md K52: a user name that is an address is masked in logs.
func TestMaskedUser(t *testing.T) {
	for in, want := range map[string]string{
		"alice":             "alice",
		"Alice":             "Alice",
		"alice@example.com": "a***@e***.com",
		"+14155550100":      "+1*******00",
		"4155550100":        "***",
		"bob-2":             "bob-2",
	} {
		if got := maskedUser(in); got != want {
			t.Errorf("maskedUser(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzLinkTokenFrom(f *testing.F) {
	for _, s := range []string{"", "abc", " https://a.test/.mfa/link#tok ", "https://a.test/.mfa/link?token=tok", "#", "token="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := linkTokenFrom(s)
		if strings.Contains(tok, "#") || tok != strings.TrimSpace(tok) {
			t.Fatalf("linkTokenFrom(%q) = %q", s, tok)
		}
		if linkTokenFrom("https://x.test/.mfa/link#"+tok) != tok {
			t.Fatalf("a link with token %q does not give it back", tok)
		}
	})
}
