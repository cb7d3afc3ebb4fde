package sms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// DefaultMessage is the text of a code message when none is configured:
// the code alone, as in the Curity SMS OTP seed.
const DefaultMessage = "%s"

// DefaultLinkMessage is the text of a link message when none is
// configured.
const DefaultLinkMessage = "Tap to sign in: %s"

// MaxBodyLength is the longest text, in characters, a message may have
// with a code of the greatest length in it. It is Twilio's limit for one
// message (sent as up to ten concatenated segments).
const MaxBodyLength = 1600

// maxAcceptLanguage bounds the language preference the message choice
// looks at.
const maxAcceptLanguage = 1024

// template is a parsed message text: the code goes between before and
// after.
type template struct {
	before, after string
}

// expand returns the text with code in place of %s.
func (t template) expand(code string) string {
	return t.before + code + t.after
}

// parseTemplate parses a message text. "%s" marks where the code goes and
// must occur exactly once; "%%" stands for a literal '%'; any other '%'
// sequence is refused, so that a printf habit such as "%d" is caught at
// provision rather than sent. The text must be valid UTF-8 without control
// characters other than newline, and short enough for MaxBodyLength with
// the longest code.
func parseTemplate(s string) (template, error) {
	if !utf8.ValidString(s) {
		return template{}, errors.New("message is not valid UTF-8")
	}
	var (
		b     strings.Builder
		t     template
		verbs int
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(s) {
			return template{}, errors.New("message ends in a lone %; write %% for a literal %")
		}
		i++
		switch s[i] {
		case '%':
			b.WriteByte('%')
		case 's':
			verbs++
			if verbs > 1 {
				return template{}, errors.New("message has more than one %s; the code goes in exactly one place")
			}
			t.before = b.String()
			b.Reset()
		default:
			r, _ := utf8.DecodeRuneInString(s[i:])
			return template{}, fmt.Errorf("message has %%%c; only %%s (the code) and %%%% (a literal %%) are allowed", r)
		}
	}
	if verbs == 0 {
		return template{}, errors.New("message has no %s; it marks where the code goes")
	}
	t.after = b.String()
	for _, r := range t.before + t.after {
		if r != '\n' && (unicode.IsControl(r) || r == '\u2028' || r == '\u2029') {
			return template{}, fmt.Errorf("message contains the control character %U", r)
		}
	}
	if n := utf8.RuneCountInString(t.before) + utf8.RuneCountInString(t.after) + maxCode; n > MaxBodyLength {
		return template{}, fmt.Errorf("message is %d characters long with a code, more than %d", n, MaxBodyLength)
	}
	return t, nil
}

// maxCode is the longest code a message carries.
const maxCode = 10

// messages are the parsed message texts of a Config: the default and one
// per configured language.
type messages struct {
	def     template
	tags    []language.Tag // tags[0] is language.Und, standing for def
	byTag   []template     // byTag[i] goes with tags[i+1]
	matcher language.Matcher
}

// parseMessages parses the default text (DefaultMessage when empty) and
// the localized ones, whose keys must be BCP 47 language tags, each at
// most once after canonicalization ("sv", "sv-SE", "pt-BR").
func parseMessages(def string, localized map[string]string) (*messages, error) {
	if def == "" {
		def = DefaultMessage
	}
	var (
		m   messages
		err error
	)
	if m.def, err = parseTemplate(def); err != nil {
		return nil, err
	}
	if len(localized) == 0 {
		return &m, nil
	}
	m.tags = []language.Tag{language.Und}
	seen := make(map[string]string, len(localized))
	// Map order is random; sort for a deterministic matcher and errors.
	keys := make([]string, 0, len(localized))
	for k := range localized {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		tag, err := language.Parse(k)
		if err != nil || tag == language.Und {
			return nil, fmt.Errorf("messages: %q is not a language tag", k)
		}
		if other, dup := seen[tag.String()]; dup {
			return nil, fmt.Errorf("messages: %q and %q are the same language", other, k)
		}
		seen[tag.String()] = k
		t, err := parseTemplate(localized[k])
		if err != nil {
			return nil, fmt.Errorf("messages %q: %w", k, err)
		}
		m.tags = append(m.tags, tag)
		m.byTag = append(m.byTag, t)
	}
	m.matcher = language.NewMatcher(m.tags)
	return &m, nil
}

// parseLinkMessages parses the link texts as parseMessages parses the code
// texts; the default is DefaultLinkMessage. Their %s stands for the link.
func parseLinkMessages(def string, localized map[string]string) (*messages, error) {
	if def == "" {
		def = DefaultLinkMessage
	}
	m, err := parseMessages(def, localized)
	if err != nil {
		return nil, fmt.Errorf("link %w", err)
	}
	return m, nil
}

// pick returns the text for the language preference lang, an
// Accept-Language value ("sv-SE,sv;q=0.9,en;q=0.8") or a single tag
// ("sv"). The default text answers when lang is empty, unparsable, or
// matches no configured language. The default text has no language of its
// own: a preference for a language without a text falls through to the
// next preference ("en,sv;q=0.5" picks sv unless en has a text).
func (m *messages) pick(lang string) template {
	if m.matcher == nil || lang == "" || len(lang) > maxAcceptLanguage {
		return m.def
	}
	prefs, _, err := language.ParseAcceptLanguage(lang)
	if err != nil || len(prefs) == 0 {
		return m.def
	}
	_, i, conf := m.matcher.Match(prefs...)
	if conf == language.No || i <= 0 || i > len(m.byTag) {
		return m.def
	}
	return m.byTag[i-1]
}

type languageKey struct{}

// WithLanguage returns a copy of ctx that carries the user's language
// preference, an Accept-Language value or a single BCP 47 tag. Deliver
// picks the message text by it; without it, the default text is sent.
func WithLanguage(ctx context.Context, lang string) context.Context {
	return context.WithValue(ctx, languageKey{}, lang)
}

// languageFrom returns the language preference WithLanguage stored in
// ctx, or "".
func languageFrom(ctx context.Context) string {
	lang, _ := ctx.Value(languageKey{}).(string)
	return lang
}
