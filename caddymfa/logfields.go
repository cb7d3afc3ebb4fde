package caddymfa

import (
	"strings"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
)

// userField is the user of a log or audit line. A user name that is an
// email address or a phone number is masked like any address (SECURITY.md
// K52): allow_emails and many first factors make the address the name.
func userField(user string) zap.Field {
	return zap.String("user", maskedUser(user))
}

// maskedUser is a user name fit for a log line: an address masked as
// email.Mask and sms.Mask do, a name that is all digits (a phone number
// without its plus) reduced to "***", any other name as it is.
func maskedUser(user string) string {
	if strings.IndexByte(user, '@') >= 0 {
		return email.Mask(user)
	}
	s := strings.TrimSpace(user)
	if strings.HasPrefix(s, "+") {
		return sms.Mask(s)
	}
	digits := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c == ' ', c == '-', c == '.', c == '(', c == ')':
		default:
			return user
		}
	}
	if digits >= 6 {
		return "***"
	}
	return user
}
