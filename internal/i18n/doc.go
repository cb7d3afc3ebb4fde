// Package i18n is the message catalog of the pages, emails and text
// messages: one file of messages per language, negotiated from the
// user's choice (a cookie) or Accept-Language, with plural forms chosen by
// the CLDR rules of each language.
//
// A translation file is named after its BCP 47 language tag ("de.txt",
// "pt-BR.txt") and holds one message a line:
//
//	# a comment
//	verify.title = Enter your code
//	attempts.left[one] = {n} attempt left.
//	attempts.left[other] = {n} attempts left.
//
// A key is letters, digits, '.', '_' and '-'; a bracketed suffix names a
// CLDR plural form (zero, one, two, few, many, other), and every plural
// message has "other". Placeholders in braces ({n}, {site}, {dest}) are
// filled in by the caller. In a text, \n stands for a new line and \\ for
// a backslash. English (en.txt) defines the keys; another language may
// not add keys of its own, and a key it lacks is taken from English.
//
// golang.org/x/text is here for language.Matcher, which negotiates a
// tag the way browsers and CLDR expect (pt-PT matches pt-BR, sv-FI
// matches sv), and for feature/plural, the CLDR plural rules: Arabic has
// six plural forms, French counts 0 as singular, Japanese has one.
package i18n
