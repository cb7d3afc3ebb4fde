package sms

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"unicode"
)

func TestParseTemplate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // expanded with testCode; empty: an error is expected
	}{
		{name: "seed default", in: "%s", want: testCode},
		{name: "sentence", in: "Your code is %s", want: "Your code is " + testCode},
		{name: "code first", in: "%s is your code", want: testCode + " is your code"},
		{name: "literal percent", in: "100%% yours: %s", want: "100% yours: " + testCode},
		{name: "escaped verb is literal", in: "%%s then %s", want: "%s then " + testCode},
		{name: "newline allowed", in: "Code: %s\n\n@app.example.com #%s2", want: ""},
		{name: "newline", in: "Code: %s\n\n@app.example.com", want: "Code: " + testCode + "\n\n@app.example.com"},
		{name: "Swedish", in: "Din kod är %s", want: "Din kod är " + testCode},
		{name: "emoji", in: "🔐 %s", want: "🔐 " + testCode},

		{name: "empty", in: ""},
		{name: "no verb", in: "Your code"},
		{name: "two verbs", in: "%s %s"},
		{name: "printf digit verb", in: "Your code is %d"},
		{name: "printf width", in: "Your code is %6s"},
		{name: "lone percent at end", in: "%s 100%"},
		{name: "percent before space", in: "50% off %s"},
		{name: "CR", in: "Your code\r is %s"},
		{name: "NUL", in: "Your code\x00 is %s"},
		{name: "tab", in: "Your\tcode %s"},
		{name: "line separator", in: "Your code\u2028%s"},
		{name: "invalid UTF-8", in: "Your code \xff %s"},
		{name: "too long", in: strings.Repeat("a", MaxBodyLength) + "%s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := parseTemplate(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("parseTemplate(%q) = %+v, want error", tt.in, tp)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseTemplate(%q) = %v", tt.in, err)
			}
			if got := tp.expand(testCode); got != tt.want {
				t.Errorf("expand = %q, want %q", got, tt.want)
			}
		})
	}
	// The longest text that fits.
	if _, err := parseTemplate(strings.Repeat("é", MaxBodyLength-maxCode) + "%s"); err != nil {
		t.Errorf("longest text refused: %v", err)
	}
}

func TestMessageLanguage(t *testing.T) {
	msgs, err := parseMessages("Your code is %s", map[string]string{
		"sv":    "Din kod är %s",
		"de":    "Ihr Code lautet %s",
		"pt-BR": "Seu código é %s",
		"pt":    "O seu código é %s",
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ lang, want string }{
		{"", "Your code is "},
		{"en", "Your code is "},
		{"en-US,en;q=0.9", "Your code is "},
		{"sv", "Din kod är "},
		{"sv-SE", "Din kod är "},
		{"sv-SE,sv;q=0.9,en-US;q=0.8,en;q=0.7", "Din kod är "},
		{"fr-CH, fr;q=0.9, de;q=0.8", "Ihr Code lautet "},
		{"de-AT", "Ihr Code lautet "},
		{"pt-BR", "Seu código é "},
		{"pt-PT", "O seu código é "},
		// The default text has no language of its own: a preference
		// without a text falls through to the next one.
		{"en;q=0.9,sv;q=0.1", "Din kod är "},
		{"fr", "Your code is "},
		{"*", "Your code is "},
		{"not a language!", "Your code is "},
		{strings.Repeat("sv,", 1000), "Your code is "},
	}
	for _, tt := range tests {
		if got := msgs.pick(tt.lang).expand(testCode); got != tt.want+testCode {
			t.Errorf("pick(%q) = %q, want %q", tt.lang, got, tt.want+testCode)
		}
	}

	withEn, err := parseMessages("%s", map[string]string{"en": "Your code is %s", "sv": "Din kod är %s"})
	if err != nil {
		t.Fatal(err)
	}
	if got := withEn.pick("en;q=0.9,sv;q=0.1").expand(testCode); got != "Your code is "+testCode {
		t.Errorf("pick with en configured = %q", got)
	}

	for _, bad := range []map[string]string{
		{"sv": "no verb"},
		{"not-a-tag!": "%s"},
		{"und": "%s"},
		{"sv": "%s", "SV": "%s"},
	} {
		if _, err := parseMessages("%s", bad); err == nil {
			t.Errorf("parseMessages(%q) succeeded", bad)
		}
	}
	if msgs, err := parseMessages("", nil); err != nil || msgs.pick("sv").expand("1") != "1" {
		t.Errorf("default message: %v", err)
	}
}

func TestRender(t *testing.T) {
	c := &Config{Message: "Your code is %s", Messages: map[string]string{"sv": "Din kod är %s"}}
	if got, err := c.Render(testCode, "sv-SE"); err != nil || got != "Din kod är "+testCode {
		t.Errorf("Render(sv) = %q, %v", got, err)
	}
	if got, err := c.Render(testCode, ""); err != nil || got != "Your code is "+testCode {
		t.Errorf("Render() = %q, %v", got, err)
	}
	for _, code := range []string{"", "12\r\n34", strings.Repeat("1", 65)} {
		if _, err := c.Render(code, ""); err == nil {
			t.Errorf("Render(%q) succeeded", code)
		}
	}
	if lang := languageFrom(WithLanguage(context.Background(), "sv")); lang != "sv" {
		t.Errorf("languageFrom = %q", lang)
	}
	if lang := languageFrom(context.Background()); lang != "" {
		t.Errorf("languageFrom(empty) = %q", lang)
	}
}

// verbPattern is a reference reading of a template: "%%" and "%s" taken
// leftmost first, as the scanner does.
var verbPattern = regexp.MustCompile(`%%|%s`)

func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"%s", "Your code is %s", "100%% %s", "%%s%s", "%s%%", "%", "%d %s", "a\nb %s", "%s\r", "%s %s", "\xff%s"} {
		f.Add(s, "493817")
	}
	f.Fuzz(func(t *testing.T, s, code string) {
		tp, err := parseTemplate(s)
		if err != nil {
			return
		}
		got := tp.expand(code)
		want := verbPattern.ReplaceAllStringFunc(s, func(v string) string {
			if v == "%%" {
				return "%"
			}
			return code
		})
		if got != want {
			t.Fatalf("parseTemplate(%q).expand(%q) = %q, want %q", s, code, got, want)
		}
		if n := len(verbPattern.FindAllString(strings.ReplaceAll(s, "%%", ""), -1)); n != 1 {
			t.Fatalf("parseTemplate(%q) accepted %d verbs", s, n)
		}
		for _, r := range tp.before + tp.after {
			if r != '\n' && unicode.IsControl(r) {
				t.Fatalf("parseTemplate(%q) kept control character %U", s, r)
			}
		}
	})
}
