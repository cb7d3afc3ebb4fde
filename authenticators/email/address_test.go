package email

import (
	"net/mail"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

func TestParseAddress(t *testing.T) {
	tests := []struct {
		in   string
		want string // empty: refused
	}{
		{"john.doe@example.com", "john.doe@example.com"},
		{"  john.doe@Example.COM ", "john.doe@example.com"},
		{"John.Doe@example.com", "John.Doe@example.com"},
		{"a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"},
		{"noreply@localhost", "noreply@localhost"},
		{"", ""},
		{"john", ""},
		{"@example.com", ""},
		{"john@", ""},
		{"John <john@example.com>", ""},
		{"<john@example.com>", ""},
		{"john@example.com (John)", ""},
		{`"john doe"@example.com`, ""},
		{"a@example.com, b@example.com", ""},
		{"a@example.com,b@example.com", ""},
		{"undisclosed-recipients:;", ""},
		{"group: a@example.com;", ""},
		{"john@example.com\r\nBcc: evil@x.com", ""},
		{"john@example.com\nBcc: evil@x.com", ""},
		{"john@example.com\rBcc: evil@x.com", ""},
		{"john@example.com\x00", ""},
		{"john@example.com%0d%0aBcc:evil@x.com", ""},
		{"john%0d%0a@example.com", ""},
		{"=?utf-8?q?evil=40x.com?=@example.com", ""},
		{"john@=?utf-8?q?x?=", ""},
		{"user%evil.com@relay.example.com", ""},
		{"host!user@example.com", ""},
		{"john@[127.0.0.1]", ""},
		{"john doe@example.com", ""},
		{"john\t@example.com", ""},
		{"a@b@example.com", ""},
		{strings.Repeat("a", 250) + "@example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddress(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseAddress(%q) = %q, want error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseAddress(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{
		"john.doe@example.com", "John <j@example.com>", "a@b, c@d", "x@y\r\nBcc: z@w",
		"=?utf-8?q?a?=@b.c", `"q"@example.com`, "g: a@b;", "a@[1.2.3.4]", "ü@例え.jp",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addr, err := ParseAddress(s)
		if err != nil {
			return
		}
		if strings.IndexFunc(addr, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }) >= 0 {
			t.Fatalf("ParseAddress(%q) = %q with a control or space character", s, addr)
		}
		if strings.Count(addr, "@") != 1 || strings.ContainsAny(addr, `<>,;:"`) {
			t.Fatalf("ParseAddress(%q) = %q is not a bare addr-spec", s, addr)
		}
		a, err := mail.ParseAddress(addr)
		if err != nil || a.Name != "" || !strings.EqualFold(a.Address, addr) {
			t.Fatalf("ParseAddress(%q) = %q, which net/mail reads as %v, %v", s, addr, a, err)
		}
		again, err := ParseAddress(addr)
		if err != nil || again != addr {
			t.Fatalf("ParseAddress not idempotent: %q -> %q -> %q, %v", s, addr, again, err)
		}
		if m := Mask(addr); strings.Contains(m, addr) || strings.Count(m, "***") != 2 {
			t.Fatalf("Mask(%q) = %q", addr, m)
		}
	})
}

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{"john.doe@example.com", "j***@e***.com"},
		{"John.Doe@Example.COM", "J***@E***.com"},
		{"a@example.co.uk", "a***@e***.uk"},
		{"a@b", "a***@b***"},
		{"ü@例え.jp", "ü***@例***.jp"},
		{"+tag@example.com", "****@e***.com"},
		{"john@", "j***@****"},
		{"@example.com", "****@e***.com"},
		{"", "***"},
		{"no-at-sign", "***"},
		{"John <john@example.com>", "J***@e***"},
		{"x@y.c\r\nBcc", "x***@y***"},
		{"j***@e***.com", "j***@e***.com"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := Mask(tt.in); got != tt.want {
				t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestMaskText(t *testing.T) {
	in := "C --> S: RCPT TO:<john.doe@example.com> code 123456 from noreply@example.com"
	got := maskText(in, "123456")
	want := "C --> S: RCPT TO:<j***@e***.com> code ****** from n***@e***.com"
	if got != want {
		t.Errorf("maskText() = %q, want %q", got, want)
	}
}

func TestHumanDuration(t *testing.T) {
	tests := map[string]string{
		"10m": "10 minutes", "1m": "1 minute", "90s": "90 seconds", "1s": "1 second",
		"1h": "1 hour", "2h": "2 hours", "30s": "30 seconds",
	}
	for in, want := range tests {
		d, _ := timeParse(in)
		if got := i18n.Builtin().English().Duration(d); got != want {
			t.Errorf("Duration(%s) = %q, want %q", in, got, want)
		}
	}
}

func timeParse(s string) (time.Duration, error) { return time.ParseDuration(s) }
