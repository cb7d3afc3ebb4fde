package i18n

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
)

//go:embed translations/*.txt
var builtinFiles embed.FS

// Keys every language file has a say in beyond its messages.
const (
	// KeyName is the language's name in itself ("Deutsch"), for the
	// language switcher.
	KeyName = "language.name"
	// KeyDir is the writing direction, "ltr" or "rtl".
	KeyDir = "language.dir"
)

// maxAcceptLanguage bounds the Accept-Language value Match looks at.
const maxAcceptLanguage = 1024

// Catalog holds the messages of every language. It is read-only once
// built and safe for concurrent use.
type Catalog struct {
	langs   []*Lang // langs[0] is English
	byTag   map[string]*Lang
	matcher language.Matcher
}

// Lang is one language of a catalog.
type Lang struct {
	tag  language.Tag
	id   string // tag.String()
	msgs map[string]*entry
	en   *Lang // the fallback; nil for English itself
}

var builtin = sync.OnceValues(func() (*Catalog, error) { return load(nil, "") })

// Builtin returns the catalog of the shipped languages.
func Builtin() *Catalog {
	c, err := builtin()
	if err != nil {
		// The shipped files are checked by the package tests.
		panic("i18n: shipped translations: " + err.Error())
	}
	return c
}

// Load returns the shipped catalog extended by the translation files in
// dir ("<tag>.txt"): a file for a shipped language overrides the messages
// it has, a file for another language adds that language, which must have
// a language.name. Any key English does not have is an error, so a typo
// fails when the config loads. An empty dir returns Builtin().
func Load(dir string) (*Catalog, error) {
	if dir == "" {
		return Builtin(), nil
	}
	return load(os.DirFS(dir), dir)
}

func load(extra fs.FS, dir string) (*Catalog, error) {
	c := &Catalog{byTag: make(map[string]*Lang)}
	sub, err := fs.Sub(builtinFiles, "translations")
	if err != nil {
		return nil, err
	}
	if err := c.addDir(sub, "", false); err != nil {
		return nil, err
	}
	if extra != nil {
		if err := c.addDir(extra, dir, true); err != nil {
			return nil, err
		}
	}
	tags := make([]language.Tag, len(c.langs))
	for i, l := range c.langs {
		tags[i] = l.tag
	}
	c.matcher = language.NewMatcher(tags)
	return c, nil
}

// addDir reads every *.txt file of fsys. English comes first, so that the
// other files can be checked against it.
func (c *Catalog) addDir(fsys fs.FS, dir string, override bool) error {
	names, err := fs.Glob(fsys, "*.txt")
	if err != nil {
		return err
	}
	if dir != "" && len(names) == 0 {
		return fmt.Errorf("translations %s: no <language>.txt files", dir)
	}
	slices.SortFunc(names, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == "en.txt":
			return -1
		case b == "en.txt":
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		where := path.Join(dir, name)
		tag, err := language.Parse(strings.TrimSuffix(name, ".txt"))
		if err != nil || tag == language.Und {
			return fmt.Errorf("translations %s: the file name is not a language tag (like de.txt or pt-BR.txt)", where)
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return fmt.Errorf("translations: %w", err)
		}
		msgs, err := parseFile(data)
		if err != nil {
			return fmt.Errorf("translations %s: %w", where, err)
		}
		if err := c.add(tag, msgs, override); err != nil {
			return fmt.Errorf("translations %s: %w", where, err)
		}
	}
	if len(c.langs) == 0 || c.langs[0].tag != language.English {
		return errors.New("translations: no en.txt")
	}
	return nil
}

// add adds a language, or with override merges msgs into one it has.
func (c *Catalog) add(tag language.Tag, msgs map[string]*entry, override bool) error {
	var en *Lang
	if len(c.langs) > 0 {
		en = c.langs[0]
		for _, key := range sortedKeys(msgs) {
			if _, ok := en.msgs[key]; !ok {
				return fmt.Errorf("unknown key %q (English has no such message)", key)
			}
			if (msgs[key].plural == nil) != (en.msgs[key].plural == nil) {
				return fmt.Errorf("%s: plural in one language and not in the other", key)
			}
		}
	}
	id := tag.String()
	if l, ok := c.byTag[id]; ok {
		if !override {
			return fmt.Errorf("%s is there twice", id)
		}
		merged := make(map[string]*entry, len(l.msgs))
		for k, e := range l.msgs {
			merged[k] = e
		}
		for k, e := range msgs {
			merged[k] = e
		}
		nl := &Lang{tag: tag, id: id, msgs: merged, en: l.en}
		c.byTag[id] = nl
		for i := range c.langs {
			if c.langs[i] == l {
				c.langs[i] = nl
			}
		}
		if nl.en == nil {
			// English was overridden: the others fall back to it.
			for _, o := range c.langs[1:] {
				o.en = nl
			}
		}
		return nil
	}
	if en == nil && tag != language.English {
		return errors.New("en.txt must come first")
	}
	if en != nil && msgs[KeyName] == nil {
		return fmt.Errorf("a new language needs %s (its name in itself)", KeyName)
	}
	l := &Lang{tag: tag, id: id, msgs: msgs, en: en}
	c.langs = append(c.langs, l)
	c.byTag[id] = l
	return nil
}

func sortedKeys(m map[string]*entry) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Languages returns the catalog's languages, English first, then by tag.
func (c *Catalog) Languages() []*Lang { return c.langs }

// English returns the English language.
func (c *Catalog) English() *Lang { return c.langs[0] }

// Lookup returns the language with exactly the tag id, or nil.
func (c *Catalog) Lookup(id string) *Lang {
	tag, err := language.Parse(id)
	if err != nil {
		return nil
	}
	return c.byTag[tag.String()]
}

// Match returns the language for a user: choice (a tag the user picked,
// from the language switcher's cookie) when the catalog has it, else the
// best match of acceptLanguage (an Accept-Language value or a single
// tag), else English.
func (c *Catalog) Match(choice, acceptLanguage string) *Lang {
	if choice != "" {
		if l := c.Lookup(choice); l != nil {
			return l
		}
	}
	if acceptLanguage == "" || len(acceptLanguage) > maxAcceptLanguage {
		return c.langs[0]
	}
	prefs, _, err := language.ParseAcceptLanguage(acceptLanguage)
	if err != nil || len(prefs) == 0 {
		return c.langs[0]
	}
	_, i, conf := c.matcher.Match(prefs...)
	if conf == language.No || i < 0 || i >= len(c.langs) {
		return c.langs[0]
	}
	return c.langs[i]
}

// Tag is the language's BCP 47 tag ("pt-BR").
func (l *Lang) Tag() string { return l.id }

// Name is the language's name in itself.
func (l *Lang) Name() string { return l.T(KeyName) }

// Dir is the writing direction, "ltr" or "rtl".
func (l *Lang) Dir() string {
	if l.T(KeyDir) == "rtl" {
		return "rtl"
	}
	return "ltr"
}

// entry returns the message of key in l, or in English.
func (l *Lang) entry(key string) *entry {
	if e, ok := l.msgs[key]; ok {
		return e
	}
	if l.en != nil {
		return l.en.msgs[key]
	}
	return nil
}

// Keys returns the keys of l's own messages, sorted.
func (l *Lang) Keys() []string { return sortedKeys(l.msgs) }

// Has reports whether key is a message of the catalog.
func (l *Lang) Has(key string) bool { return l.entry(key) != nil }

// Text returns the unexpanded text of key for the count n (used only by
// plural messages), or key itself when no language has it.
func (l *Lang) Text(key string, n int) string {
	e := l.entry(key)
	switch {
	case e == nil:
		return key
	case e.plural == nil:
		return e.text
	}
	if t, ok := e.plural[l.form(n)]; ok {
		return t
	}
	return e.plural["other"]
}

// form is the CLDR plural category of the integer n in l.
func (l *Lang) form(n int) string {
	if n < 0 {
		n = -n
	}
	switch plural.Cardinal.MatchPlural(l.tag, n, 0, 0, 0, 0) {
	case plural.Zero:
		return "zero"
	case plural.One:
		return "one"
	case plural.Two:
		return "two"
	case plural.Few:
		return "few"
	case plural.Many:
		return "many"
	}
	return "other"
}

// Forms returns the plural categories integers fall in for l, "other"
// always among them.
func (l *Lang) Forms() []string {
	seen := map[string]bool{"other": true}
	for n := range 1000 {
		seen[l.form(n)] = true
	}
	var forms []string
	for _, f := range pluralForms {
		if seen[f] {
			forms = append(forms, f)
		}
	}
	return forms
}

// T returns the text of key with its placeholders filled from args, pairs
// of name and value: T("verify.expires", "time", "10 minutes").
func (l *Lang) T(key string, args ...string) string {
	return Expand(l.Text(key, 0), nil, pairs(args))
}

// N returns the text of the plural message key for the count n, with {n}
// and the placeholders of args filled in.
func (l *Lang) N(key string, n int, args ...string) string {
	arg := pairs(args)
	return Expand(l.Text(key, n), nil, func(name string) (string, bool) {
		if name == "n" {
			return strconv.Itoa(n), true
		}
		return arg(name)
	})
}

func pairs(args []string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for i := 0; i+1 < len(args); i += 2 {
			if args[i] == name {
				return args[i+1], true
			}
		}
		return "", false
	}
}

// Expand returns text with every {name} that arg knows replaced by its
// value. The text around the placeholders, and unknown placeholders, go
// through lit when it is not nil (to escape them for HTML, say); the
// values are used as arg returns them.
func Expand(text string, lit func(string) string, arg func(name string) (string, bool)) string {
	if lit == nil {
		lit = func(s string) string { return s }
	}
	var b strings.Builder
	for {
		i := strings.IndexByte(text, '{')
		if i < 0 {
			break
		}
		j := strings.IndexByte(text[i:], '}')
		if j < 0 {
			break
		}
		name := text[i+1 : i+j]
		if v, ok := arg(name); ok {
			b.WriteString(lit(text[:i]))
			b.WriteString(v)
		} else {
			b.WriteString(lit(text[:i+j+1]))
		}
		text = text[i+j+1:]
	}
	b.WriteString(lit(text))
	return b.String()
}

type langKey struct{}

// WithLang returns a copy of ctx that carries l, the language of the
// user a message goes to.
func WithLang(ctx context.Context, l *Lang) context.Context {
	return context.WithValue(ctx, langKey{}, l)
}

// FromContext returns the language WithLang put in ctx, or English.
func FromContext(ctx context.Context) *Lang {
	if l, ok := ctx.Value(langKey{}).(*Lang); ok && l != nil {
		return l
	}
	return Builtin().English()
}

// Duration says d in words, rounded to whole hours, minutes or seconds
// when it is a multiple of them: "10 minutes", "1 hour", "90 seconds".
func (l *Lang) Duration(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return l.N("duration.hours", int(d/time.Hour))
	case d >= time.Minute && d%time.Minute == 0:
		return l.N("duration.minutes", int(d/time.Minute))
	}
	return l.N("duration.seconds", int(d/time.Second))
}
