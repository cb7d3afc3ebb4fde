package i18n

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits of a translation file, so that a file an operator points at by
// mistake fails fast instead of filling memory.
const (
	maxFileSize = 1 << 20
	maxLine     = 16 << 10
)

// pluralForms are the CLDR plural categories, in the order of
// feature/plural's Form values.
var pluralForms = []string{"other", "zero", "one", "two", "few", "many"}

// entry is one message: a text, or texts by plural form.
type entry struct {
	text   string
	plural map[string]string // by form name; nil for a plain message
}

// parseFile parses a translation file (the format is in the package
// doc). Errors name the line.
func parseFile(data []byte) (map[string]*entry, error) {
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("file is larger than %d bytes", maxFileSize)
	}
	if !utf8.Valid(data) {
		return nil, errors.New("file is not valid UTF-8")
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	msgs := make(map[string]*entry)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: want key = text", n)
		}
		name = strings.TrimSpace(name)
		key, form, err := splitKey(name)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		text, err := unescape(strings.TrimSpace(value))
		if err != nil {
			return nil, fmt.Errorf("line %d: %s: %w", n, name, err)
		}
		e := msgs[key]
		if e == nil {
			e = &entry{}
			msgs[key] = e
		}
		switch {
		case form == "" && (e.plural != nil || e.text != ""):
			return nil, fmt.Errorf("line %d: %s is defined twice", n, key)
		case form == "":
			e.text = text
			if text == "" {
				// An empty text is kept as a marker of the key.
				e.text = "\x00"
			}
		case e.text != "":
			return nil, fmt.Errorf("line %d: %s is both plain and plural", n, key)
		default:
			if e.plural == nil {
				e.plural = make(map[string]string)
			}
			if _, dup := e.plural[form]; dup {
				return nil, fmt.Errorf("line %d: %s is defined twice", n, name)
			}
			e.plural[form] = text
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	for key, e := range msgs {
		if e.text == "\x00" {
			e.text = ""
		}
		if e.plural != nil {
			if _, ok := e.plural["other"]; !ok {
				return nil, fmt.Errorf("%s has plural forms but no %s[other]", key, key)
			}
		}
	}
	return msgs, nil
}

// splitKey splits "key[form]" and checks both parts.
func splitKey(name string) (key, form string, err error) {
	key = name
	if i := strings.IndexByte(name, '['); i >= 0 {
		if !strings.HasSuffix(name, "]") {
			return "", "", fmt.Errorf("%q: a plural form is written key[form]", name)
		}
		key, form = name[:i], name[i+1:len(name)-1]
		found := false
		for _, f := range pluralForms {
			found = found || f == form
		}
		if !found {
			return "", "", fmt.Errorf("%q: unknown plural form %q (want one of %s)", name, form, strings.Join(pluralForms, ", "))
		}
	}
	if key == "" {
		return "", "", errors.New("empty key")
	}
	for _, r := range key {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return "", "", fmt.Errorf("key %q has %q; keys are letters, digits, '.', '_' and '-'", key, r)
		}
	}
	return key, form, nil
}

// unescape turns \n into a new line and \\ into a backslash, and refuses
// other escapes and control characters.
func unescape(s string) (string, error) {
	if strings.IndexFunc(s, func(r rune) bool { return r == '\\' || r < 0x20 || r == 0x7f }) < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 == len(s) {
				return "", errors.New(`text ends in a lone \; write \\ for a backslash`)
			}
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case '\\':
				b.WriteByte('\\')
			default:
				return "", fmt.Errorf(`unknown escape \%c (only \n and \\)`, s[i])
			}
		case c < 0x20 || c == 0x7f:
			return "", fmt.Errorf("text has the control character %U", rune(c))
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}
