package sms

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseNumber(t *testing.T) {
	tests := []struct {
		name   string
		in     string
		e164   string
		region string
	}{
		{name: "US", in: "+12015550123", e164: "+12015550123", region: "US"},
		{name: "US with separators", in: "+1 (201) 555-0123", e164: "+12015550123", region: "US"},
		{name: "US with dots", in: "+1.201.555.0123", e164: "+12015550123", region: "US"},
		{name: "surrounding spaces", in: "  +12015550123 ", e164: "+12015550123", region: "US"},
		{name: "Canada shares +1", in: "+16135550123", e164: "+16135550123", region: "CA"},
		{name: "Sweden mobile", in: "+46 70 123 45 67", e164: "+46701234567", region: "SE"},
		{name: "UK landline", in: "+44 20 7183 8750", e164: "+442071838750", region: "GB"},
		{name: "UK with national prefix", in: "+44 (0)20 7183 8750", e164: "+442071838750", region: "GB"},
		{name: "Germany mobile", in: "+49 151 23456789", e164: "+4915123456789", region: "DE"},
		{name: "Argentina mobile", in: "+54 9 11 1234 5678", e164: "+5491112345678", region: "AR"},

		{name: "empty", in: ""},
		{name: "plus only", in: "+"},
		{name: "national form", in: "2015550123"},
		{name: "national form with 00", in: "0012015550123"},
		{name: "unassigned area code 555", in: "+15551234567"},
		{name: "too short", in: "+1201555"},
		{name: "too long", in: "+120155501234"},
		{name: "too long for E.164", in: "+4670123456789012"},
		{name: "over input limit", in: "+1" + strings.Repeat(" ", 21) + "2015550123"},
		{name: "unknown country code", in: "+99912345678"},
		{name: "letters", in: "+1201555abcd"},
		{name: "vanity number", in: "+1-800-FLOWERS"},
		{name: "extension", in: "+12015550123 ext 12"},
		{name: "extension with x", in: "+12015550123x12"},
		{name: "NUL", in: "+12015550123\x00"},
		{name: "CR LF header injection", in: "+12015550123\r\nBcc: +12015550124"},
		{name: "LF", in: "+12015550123\n"},
		{name: "tab", in: "+1\t2015550123"},
		{name: "encoded CR LF", in: "+12015550123%0d%0a"},
		{name: "two numbers", in: "+12015550123,+12015550124"},
		{name: "fullwidth digits", in: "+１２０１５５５０１２３"},
		{name: "Arabic-Indic digits", in: "+١٢٠١٥٥٥٠١٢٣"},
		{name: "second plus", in: "+1+2015550123"},
		{name: "tel URI", in: "tel:+12015550123"},
		{name: "premium rate US", in: "+19002345678"},
		{name: "premium rate UK", in: "+449012345678"},
		{name: "non-geographic freephone", in: "+80012345678"},
		{name: "non-geographic network", in: "+883510012345"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e164, region, err := ParseNumber(tt.in)
			if tt.e164 == "" {
				if !errors.Is(err, ErrInvalidNumber) || e164 != "" || region != "" {
					t.Fatalf("ParseNumber(%q) = %q, %q, %v; want ErrInvalidNumber", tt.in, e164, region, err)
				}
				return
			}
			if err != nil || e164 != tt.e164 || region != tt.region {
				t.Fatalf("ParseNumber(%q) = %q, %q, %v; want %q, %q", tt.in, e164, region, err, tt.e164, tt.region)
			}
		})
	}
}

func TestAllowedCountry(t *testing.T) {
	tests := []struct {
		region  string
		allowed []string
		want    bool
	}{
		{"US", nil, true},
		{"SE", []string{}, true},
		{"US", []string{"US", "CA"}, true},
		{"CA", []string{"US", "CA"}, true},
		{"ca", []string{"US", "CA"}, true},
		{"SE", []string{"US", "CA"}, false},
		{"", []string{"US"}, false},
		{"001", []string{"US"}, false},
	}
	for _, tt := range tests {
		if got := AllowedCountry(tt.region, tt.allowed); got != tt.want {
			t.Errorf("AllowedCountry(%q, %q) = %v, want %v", tt.region, tt.allowed, got, tt.want)
		}
	}
}

func TestValidCountry(t *testing.T) {
	for _, cc := range []string{"US", "se", "GB", "GG", "AR"} {
		if !ValidCountry(cc) {
			t.Errorf("ValidCountry(%q) = false", cc)
		}
	}
	for _, cc := range []string{"", "U", "USA", "XX", "ZZ", "001", "U1", "EU", "UK"} {
		if ValidCountry(cc) {
			t.Errorf("ValidCountry(%q) = true", cc)
		}
	}
}

func TestCheckNumber(t *testing.T) {
	c := &Config{AllowedCountries: []string{"us", "CA"}}
	if e164, region, err := c.CheckNumber("+1 613 555 0123"); err != nil || e164 != "+16135550123" || region != "CA" {
		t.Errorf("CheckNumber(CA) = %q, %q, %v", e164, region, err)
	}
	if _, _, err := c.CheckNumber("+46701234567"); !errors.Is(err, ErrCountryNotAllowed) {
		t.Errorf("CheckNumber(SE) = %v, want ErrCountryNotAllowed", err)
	}
	if _, _, err := c.CheckNumber("+15551234567"); !errors.Is(err, ErrInvalidNumber) {
		t.Errorf("CheckNumber(invalid) = %v, want ErrInvalidNumber", err)
	}
}

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{"+15551234567", "+1*******67"},
		{"+12015550123", "+1*******23"},
		{"+46701234567", "+4*******67"},
		{"+4915123456789", "+4*******89"},
		{"+1 (201) 555-0123", "+1*******23"},
		{" +12015550123 ", "+1*******23"},
		{"+123456", "+1*******56"},
		{"+12345", "***"},
		{"+1234567890123456", "***"},
		{"12015550123", "***"},
		{"", "***"},
		{"+", "***"},
		{"+12015550123\r\n", "***"},
		{"+1201555abcd", "***"},
		{"john@example.com", "***"},
		{"++12015550123", "***"},
	}
	for _, tt := range tests {
		if got := Mask(tt.in); got != tt.want {
			t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMaskText(t *testing.T) {
	in := "twilio: HTTP 400, error 21211: Invalid 'To' Phone Number: +12015550123 (code 493817, also 12015550123, other +46701234567, error 21211)"
	got := maskText(in, testCode, testTo)
	checkSecrets(t, "masked text", got, testCode, testTo, "12015550123", "46701234567")
	for _, want := range []string{"+1*******23", "+4*******67", "21211", "******"} {
		if !strings.Contains(got, want) {
			t.Errorf("masked text lacks %q: %s", want, got)
		}
	}
}

var maskPattern = regexp.MustCompile(`^\+[1-9]\*{7}[0-9]{2}$`)

func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{
		"+12015550123", "+1 (201) 555-0123", "+46701234567", "+442071838750",
		"+15551234567", "+19002345678", "+80012345678", "+12015550123\r\n",
		"+1-800-FLOWERS", "+12015550123 ext 1", "", "+", "+0", "+(((())))", "+1..2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e164, region, err := ParseNumber(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidNumber) || e164 != "" || region != "" {
				t.Fatalf("ParseNumber(%q) = %q, %q, %v", s, e164, region, err)
			}
			return
		}
		if !isE164(e164) || !isRegion(region) || !utf8.ValidString(s) {
			t.Fatalf("ParseNumber(%q) = %q, %q", s, e164, region)
		}
		if strings.ContainsAny(s, "\r\n\x00") {
			t.Fatalf("ParseNumber(%q) accepted a control character", s)
		}
		again, region2, err := ParseNumber(e164)
		if err != nil || again != e164 || region2 != region {
			t.Fatalf("ParseNumber(%q) = %q, %q, %v; not stable for %q", e164, again, region2, err, s)
		}
		// Mask(s) may differ: a national prefix or carrier code written
		// after the country code ("+44 (0)20...") is not in e164.
		if m := Mask(e164); !maskPattern.MatchString(m) {
			t.Fatalf("Mask(%q) = %q", e164, m)
		}
	})
}

func FuzzMask(f *testing.F) {
	for _, s := range []string{"+15551234567", "+1 (201) 555-0123", "+123456", "+12345", "", "+", "abc", "+1\n2345678"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m := Mask(s)
		if m == "***" {
			return
		}
		if !maskPattern.MatchString(m) {
			t.Fatalf("Mask(%q) = %q", s, m)
		}
		digits := strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return r
			}
			return -1
		}, s)
		if len(digits) < 6 || m[1] != digits[0] || m[len(m)-2:] != digits[len(digits)-2:] {
			t.Fatalf("Mask(%q) = %q shows digits that are not the first and the last two", s, m)
		}
	})
}

func BenchmarkParseNumber(b *testing.B) {
	for b.Loop() {
		if _, _, err := ParseNumber("+46 70 123 45 67"); err != nil {
			b.Fatal(err)
		}
	}
}
