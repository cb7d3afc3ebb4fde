package email

import (
	"errors"
	"net/mail"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxAddressLength is the longest address ParseAddress accepts (RFC 5321
// limits a forward path to 256 octets including the angle brackets).
const MaxAddressLength = 254

// ErrInvalidAddress is returned by ParseAddress.
var ErrInvalidAddress = errors.New("invalid email address")

// ParseAddress validates s as exactly one bare address (an RFC 5322
// addr-spec such as "john.doe@example.com") and returns it with the domain
// in lower case. It refuses control characters (CR, LF, NUL...), display
// names, angle brackets, comments, quoted local parts, several addresses,
// group syntax, encoded-word lookalikes ("=?...?=") and the relay-routing
// characters '%' and '!'.
func ParseAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > MaxAddressLength || !utf8.ValidString(s) {
		return "", ErrInvalidAddress
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return "", ErrInvalidAddress
		}
	}
	if strings.ContainsAny(s, `%!"<>(),;:\[]`) || strings.Contains(s, "=?") {
		return "", ErrInvalidAddress
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return "", ErrInvalidAddress
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.Count(s, "@") != 1 {
		return "", ErrInvalidAddress
	}
	return s[:at] + "@" + strings.ToLower(s[at+1:]), nil
}

// Mask hides most of an address for pages and logs: "john.doe@example.com"
// becomes "j***@e***.com". It shows the first character of the local part
// and of the domain, and the last domain label, and nothing else; a
// character that is not a letter or digit is shown as '*'. Input that is
// not an address gives "***".
func Mask(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return "***"
	}
	local, domain := addr[:at], addr[at+1:]
	var b strings.Builder
	b.WriteString(firstChar(local))
	b.WriteString("***@")
	labels := strings.Split(domain, ".")
	b.WriteString(firstChar(labels[0]))
	b.WriteString("***")
	if len(labels) > 1 {
		tld := labels[len(labels)-1]
		if tld != "" && len(tld) <= 63 && isLabel(tld) {
			b.WriteByte('.')
			b.WriteString(strings.ToLower(tld))
		}
	}
	return b.String()
}

func firstChar(s string) string {
	r, _ := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError || !(unicode.IsLetter(r) || unicode.IsDigit(r)) {
		return "*"
	}
	return string(r)
}

func isLabel(s string) bool {
	for _, r := range s {
		if !(r < utf8.RuneSelf && (r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z')) {
			return false
		}
	}
	return true
}

// addressPattern finds address-like words in free text (SMTP transcripts,
// error messages), so they can be masked.
var addressPattern = regexp.MustCompile(`[^\s<>()\[\]"',;:]+@[^\s<>()\[\]"',;:]+`)

// maskText replaces code, when not empty, with asterisks and every
// address-like word with its Mask.
func maskText(s, code string) string {
	if code != "" {
		s = strings.ReplaceAll(s, code, "******")
	}
	return addressPattern.ReplaceAllStringFunc(s, Mask)
}
