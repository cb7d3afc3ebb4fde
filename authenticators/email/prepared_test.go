package email

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

func TestPreparable(t *testing.T) {
	tests := []struct {
		name, subject, text string
		want                bool
	}{
		{"built-in", "", "", true},
		{"code tested and printed", "Code for {{.Site}}", "{{if .Code}}{{.Code}}{{end}} {{$.Site}} {{.ExpiresIn}}", true},
		{"user name", "", "Hello {{.User}}: {{.Code}}", false},
		{"masked address", "For {{.To}}", "{{.Code}}", false},
		{"the whole data", "", "{{.}}", false},
		{"$ alone", "", "{{printf \"%v\" $}}", false},
		{"$.User", "", "{{$.User}} {{.Code}}", false},
		{"code cut", "", "{{printf \"%.3s\" .Code}}", false},
		{"code length", "", "{{len .Code}}", false},
		{"code in a variable", "", "{{$c := .Code}}{{$c}}", false},
		{"code as a text key", "", "{{.T .Code}}", false},
		{"another template", "", "{{define \"x\"}}{{.User}}{{end}}{{template \"x\" .}}", false},
		{"with changes dot", "", "{{with .Site}}{{.}}{{end}}", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tp, err := loadTemplatesFrom(t, tt.subject, tt.text)
			if err != nil {
				t.Fatal(err)
			}
			if got := tp.prep != nil; got != tt.want {
				t.Errorf("preparable = %v, want %v", got, tt.want)
			}
		})
	}
}

// loadTemplatesFrom loads a subject and a text template ("" for the
// built-in ones) with the built-in HTML template.
func loadTemplatesFrom(t *testing.T, subject, text string) (*templates, error) {
	t.Helper()
	cfg := &Templates{Subject: subject}
	if text != "" {
		cfg.TextFile = t.TempDir() + "/text.tmpl"
		if err := os.WriteFile(cfg.TextFile, []byte(text), 0o600); err != nil {
			return nil, err
		}
	}
	return loadTemplates(cfg)
}

// A prepared code message is the message rendering would give, in every
// language, for every site and code, also after the cache starts over.
func TestPreparedMessageSameAsRendered(t *testing.T) {
	tp, err := loadTemplates(nil)
	if err != nil {
		t.Fatal(err)
	}
	if tp.prep == nil {
		t.Fatal("the built-in templates are not prepared")
	}
	for i := range maxPrepared + 10 {
		for _, lang := range i18n.Builtin().Languages() {
			d := TemplateData{
				Code:      fmt.Sprintf("%06d", i*7919%1000000),
				Site:      fmt.Sprintf("site%d.example.com", i%(maxPrepared+5)),
				To:        "j***@e***.com",
				User:      "john",
				ExpiresIn: lang.Duration(10 * time.Minute),
				lang:      lang,
			}
			s1, t1, h1, err1 := tp.render(d)
			s2, t2, h2, err2 := tp.prep.render(tp, d)
			if err1 != nil || err2 != nil {
				t.Fatalf("render: %v, prepared: %v", err1, err2)
			}
			if s1 != s2 || t1 != t2 || h1 != h2 {
				t.Fatalf("%s, %s: prepared message differs from rendered:\n%q\n%q\n%q\n%q", lang.Tag(), d.Site, t1, t2, h1, h2)
			}
			if i < 3 && i > 0 && lang == i18n.Builtin().English() {
				if !strings.Contains(t2, d.Code) || !strings.Contains(h2, d.Code) || strings.Contains(t2+h2+s2, tp.prep.placeholder) {
					t.Fatalf("prepared message without its code, or with the placeholder:\n%s\n%s", t2, h2)
				}
			}
		}
	}
	if n := len(tp.prep.m); n > maxPrepared {
		t.Errorf("cache holds %d messages, over %d", n, maxPrepared)
	}
}
