package sms

import (
	"errors"
	"regexp"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// MaxNumberInput is the longest input ParseNumber looks at. An E.164
// number has at most 15 digits; the rest leaves room for a plus sign and
// separators such as "+1 (201) 555-0123".
const MaxNumberInput = 32

// Errors of ParseNumber and Config.CheckNumber.
var (
	// ErrInvalidNumber means the input is not a valid phone number that
	// can receive a text in a country.
	ErrInvalidNumber = errors.New("invalid phone number")
	// ErrCountryNotAllowed means the number is valid, but its country is
	// not in allowed_countries.
	ErrCountryNotAllowed = errors.New("phone number country not allowed")
)

// ParseNumber validates s as an international phone number and returns it
// in E.164 form ("+12015550123") with the ISO 3166-1 alpha-2 code of its
// country ("US").
//
// s must start with '+' and the country calling code: numbers in national
// form are refused, because the country they belong to would be a guess.
// Between the digits, spaces, dashes, dots and parentheses are allowed
// ("+1 (201) 555-0123"). A national prefix written after the country code
// is dropped, as in "+44 (0)20 7183 8750", so the E.164 form, the one to
// store and to send to, may have fewer digits than s. Everything else is
// refused before the number is parsed: letters (no vanity numbers, no
// extensions), control characters such as CR, LF and NUL, non-ASCII
// digits, more than MaxNumberInput bytes. The number must then be valid in
// the metadata of github.com/nyaruka/phonenumbers (a country calling code
// in use, a length and a prefix that the country assigns) and belong to a
// country: numbers of non-geographic entities (+800, +882, +883...) and
// premium-rate numbers, the usual targets of SMS pumping, are refused.
//
// Every error wraps ErrInvalidNumber.
func ParseNumber(s string) (e164, region string, err error) {
	s = strings.Trim(s, " ")
	if len(s) > MaxNumberInput || len(s) < 2 || s[0] != '+' {
		return "", "", ErrInvalidNumber
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
		case c == ' ', c == '-', c == '.', c == '(', c == ')':
		default:
			return "", "", ErrInvalidNumber
		}
	}
	num, err := phonenumbers.Parse(s, "")
	if err != nil || num.GetExtension() != "" || !phonenumbers.IsValidNumber(num) {
		return "", "", ErrInvalidNumber
	}
	region = phonenumbers.GetRegionCodeForNumber(num)
	if !isRegion(region) {
		return "", "", ErrInvalidNumber
	}
	if phonenumbers.GetNumberType(num) == phonenumbers.PREMIUM_RATE {
		return "", "", ErrInvalidNumber
	}
	e164 = phonenumbers.Format(num, phonenumbers.E164)
	if !isE164(e164) {
		return "", "", ErrInvalidNumber
	}
	return e164, region, nil
}

// AllowedCountry reports whether region, an ISO 3166-1 alpha-2 code as
// ParseNumber returns it, is in allowed. An empty allowed list allows
// every country. The comparison ignores case.
func AllowedCountry(region string, allowed []string) bool {
	if len(allowed) == 0 {
		return true
	}
	return slices.ContainsFunc(allowed, func(a string) bool { return strings.EqualFold(a, region) })
}

// ValidCountry reports whether code is an ISO 3166-1 alpha-2 code that has
// phone numbers, e.g. "SE" (case is ignored).
func ValidCountry(code string) bool {
	code = strings.ToUpper(code)
	return isRegion(code) && phonenumbers.GetCountryCodeForRegion(code) != 0
}

// isRegion reports whether s is two upper-case ASCII letters. It rules out
// "" (unknown) and "001" (non-geographic entities).
func isRegion(s string) bool {
	return len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z'
}

// isE164 reports whether s is '+' and 2 to 15 digits, the first not 0.
func isE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// maskStars stands for the hidden digits. It has a fixed length, so the
// mask does not tell how long the number is.
const maskStars = "*******"

// Mask hides most of a phone number for pages and logs: "+15551234567"
// becomes "+1*******67". It keeps the plus sign, the first digit of the
// country calling code and the last two digits; the stars do not tell the
// length. Spaces, dashes, dots and parentheses in the input are ignored.
// Input that is not '+' and 6 to 15 digits, the first not 0, gives "***".
func Mask(number string) string {
	s := strings.Trim(number, " ")
	if len(s) > MaxNumberInput || len(s) < 2 || s[0] != '+' {
		return "***"
	}
	digits := make([]byte, 0, 15)
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			if len(digits) == 15 {
				return "***"
			}
			digits = append(digits, c)
		case c == ' ', c == '-', c == '.', c == '(', c == ')':
		default:
			return "***"
		}
	}
	if len(digits) < 6 || digits[0] == '0' {
		return "***"
	}
	return "+" + string(digits[0]) + maskStars + string(digits[len(digits)-2:])
}

// numberPattern finds E.164-like numbers in free text (provider errors),
// so they can be masked.
var numberPattern = regexp.MustCompile(`\+[0-9]{6,15}`)

// maskText removes what logs must not show from a provider's error text:
// code, when not empty, becomes "******"; the destination to, with or
// without its plus sign, and every other E.164-like number become their
// Mask.
func maskText(s, code, to string) string {
	if code != "" {
		s = strings.ReplaceAll(s, code, "******")
	}
	if to != "" {
		s = strings.ReplaceAll(s, to, Mask(to))
		if bare := strings.TrimPrefix(to, "+"); len(bare) >= 6 {
			s = strings.ReplaceAll(s, bare, Mask(to))
		}
	}
	return numberPattern.ReplaceAllStringFunc(s, Mask)
}
