package i18n

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// shipped are the languages the package promises.
var shipped = []string{"en", "de", "fr", "es", "pt-BR", "sv", "ja", "ar"}

// TestShippedLanguagesComplete fails when a shipped language lacks a key
// of English, has a key English does not have, lacks a plural form its
// CLDR rules use, or drops a placeholder of the English text.
func TestShippedLanguagesComplete(t *testing.T) {
	c := Builtin()
	var got []string
	for _, l := range c.Languages() {
		got = append(got, l.Tag())
	}
	for _, tag := range shipped {
		if !slices.Contains(got, tag) {
			t.Errorf("language %s is not shipped (have %v)", tag, got)
		}
	}
	en := c.English()
	for _, l := range c.Languages()[1:] {
		for _, key := range en.Keys() {
			e, ok := l.msgs[key]
			if !ok {
				t.Errorf("%s lacks %s", l.Tag(), key)
				continue
			}
			ee := en.msgs[key]
			if ee.plural == nil {
				if want, have := placeholders(ee.text), placeholders(e.text); !slices.Equal(want, have) {
					t.Errorf("%s %s has placeholders %v, English %v", l.Tag(), key, have, want)
				}
				continue
			}
			for _, form := range l.Forms() {
				if _, ok := e.plural[form]; !ok {
					t.Errorf("%s lacks %s[%s]", l.Tag(), key, form)
				}
			}
			for form, text := range e.plural {
				if !slices.Contains(l.Forms(), form) {
					t.Errorf("%s has %s[%s], a form %s does not use", l.Tag(), key, form, l.Tag())
				}
				want := placeholders(ee.plural["other"])
				have := placeholders(text)
				if form != "one" && form != "zero" && form != "two" && !slices.Equal(want, have) {
					t.Errorf("%s %s[%s] has placeholders %v, English %v", l.Tag(), key, form, have, want)
				}
			}
		}
		// parse refuses keys English lacks; check it on the raw file too.
		for _, key := range l.Keys() {
			if !en.Has(key) {
				t.Errorf("%s has %s, which English does not", l.Tag(), key)
			}
		}
		if l.Name() == en.Name() {
			t.Errorf("%s has no name of its own", l.Tag())
		}
	}
	if d := c.Lookup("ar").Dir(); d != "rtl" {
		t.Errorf("Arabic is %s, want rtl", d)
	}
}

// placeholders returns the sorted {names} of a text.
func placeholders(s string) []string {
	var names []string
	Expand(s, nil, func(name string) (string, bool) {
		names = append(names, name)
		return "", false
	})
	slices.Sort(names)
	return names
}

func TestMatch(t *testing.T) {
	c := Builtin()
	tests := []struct{ choice, accept, want string }{
		{"", "", "en"},
		{"", "de-DE,de;q=0.9,en;q=0.8", "de"},
		{"", "sv-FI", "sv"},
		{"", "pt-PT,pt;q=0.9", "pt-BR"},
		{"", "ar-EG", "ar"},
		{"", "ja-JP", "ja"},
		{"", "fr-CA,en;q=0.5", "fr"},
		{"", "es-419", "es"},
		{"", "xx,zz", "en"},
		{"", "nl,de;q=0.5", "de"},
		{"ja", "de", "ja"},
		{"xx", "de", "de"},
		{"", strings.Repeat("de,", 400), "en"},
	}
	for _, tt := range tests {
		if got := c.Match(tt.choice, tt.accept).Tag(); got != tt.want {
			t.Errorf("Match(%q, %q) = %s, want %s", tt.choice, tt.accept, got, tt.want)
		}
	}
}

func TestPlural(t *testing.T) {
	c := Builtin()
	tests := []struct {
		lang string
		n    int
		want string
	}{
		{"en", 1, "1 attempt left."},
		{"en", 0, "0 attempts left."},
		{"fr", 0, "0 tentative restante."},
		{"fr", 2, "2 tentatives restantes."},
		{"de", 1, "Noch 1 Versuch."},
		{"ar", 0, "لم تتبقَّ أي محاولة."},
		{"ar", 2, "تبقّت محاولتان."},
		{"ar", 5, "تبقّت 5 محاولات."},
		{"ar", 11, "تبقّت 11 محاولة."},
	}
	for _, tt := range tests {
		if got := c.Lookup(tt.lang).N("verify.attempts_left", tt.n); got != tt.want {
			t.Errorf("%s N(%d) = %q, want %q", tt.lang, tt.n, got, tt.want)
		}
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("de.txt", "verify.button = Prüfen\n")
	write("nl.txt", "language.name = Nederlands\nverify.button = Controleren\n")
	c, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Lookup("de").T("verify.button"); got != "Prüfen" {
		t.Errorf("overridden de = %q", got)
	}
	if got := c.Lookup("de").T("verify.title"); got != "Code eingeben" {
		t.Errorf("kept de = %q", got)
	}
	nl := c.Match("", "nl-NL")
	if nl.Tag() != "nl" || nl.T("verify.button") != "Controleren" || nl.T("verify.title") != "Enter your code" {
		t.Errorf("added nl: %s %q %q", nl.Tag(), nl.T("verify.button"), nl.T("verify.title"))
	}

	for name, body := range map[string]string{
		"de.txt":    "verify.buton = x\n",
		"xx-.txt":   "a = b\n",
		"it.txt":    "verify.button = Verifica\n",
		"ja.txt":    "verify.button[one] = x\n",
		"sv.txt":    "verify.attempts_left = x\n",
		"pt.txt":    "language.name = Português\nverify.attempts_left[one] = x\n",
		"fr.txt":    "verify.button = a\nverify.button = b\n",
		"es.txt":    "nothing here\n",
		"readme.md": "",
	} {
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(d); err == nil {
			t.Errorf("%s %q: no error", name, body)
		}
	}
}

func TestExpand(t *testing.T) {
	arg := func(name string) (string, bool) {
		if name == "a" {
			return "<A>", true
		}
		return "", false
	}
	got := Expand("x{a}y{b}{", strings.ToUpper, arg)
	if want := "X<A>Y{B}{"; got != want {
		t.Errorf("Expand = %q, want %q", got, want)
	}
}

func FuzzParseFile(f *testing.F) {
	for _, seed := range []string{
		"a = b\n",
		"# c\n\nk[one] = {n} x\nk[other] = {n} xs\n",
		"k = line\\none\\\\two",
		"k[few] = x",
		"k = \\q",
		"\ufeffk = v",
		"k[one = x",
	} {
		f.Add([]byte(seed))
	}
	en, _ := builtinFiles.ReadFile("translations/en.txt")
	f.Add(en)
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs, err := parseFile(data)
		if err != nil {
			return
		}
		for key, e := range msgs {
			if _, _, err := splitKey(key); err != nil {
				t.Errorf("accepted key %q: %v", key, err)
			}
			if e.plural != nil {
				if e.text != "" {
					t.Errorf("%s is plain and plural", key)
				}
				if _, ok := e.plural["other"]; !ok {
					t.Errorf("%s has no other form", key)
				}
			}
			for _, text := range append([]string{e.text}, mapValues(e.plural)...) {
				if strings.ContainsFunc(text, func(r rune) bool { return r < 0x20 && r != '\n' || r == 0x7f }) {
					t.Errorf("%s has a control character: %q", key, text)
				}
			}
		}
	})
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
