package sms

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// maxSiteName bounds the site name in a notice, so a notice stays within
// two SMS segments whatever the site is called.
const maxSiteName = 60

// noticeTexts are the built-in notice texts, by event. %[1]s is the site,
// %[2]s the factor in words. They are short and plain ASCII, so they fit
// in one or two GSM-7 segments.
var noticeTexts = map[string]string{
	authenticators.NoticeFactorAdded:          "Security notice: %[2]s was added to your account on %[1]s.",
	authenticators.NoticeFactorRemoved:        "Security notice: %[2]s was removed from your account on %[1]s.",
	authenticators.NoticeRecoveryCodeUsed:     "Security notice: a recovery code was used to sign in to your account on %[1]s.",
	authenticators.NoticeRecoveryCodesRenewed: "Security notice: new recovery codes were generated for your account on %[1]s.",
	authenticators.NoticeSessionsEnded:        "Security notice: devices were signed out of your account on %[1]s.",
}

// noticeAdvice ends every notice.
const noticeAdvice = " If this was not you, contact the administrator now."

// factorWords name the factors of NoticeFactorAdded and
// NoticeFactorRemoved in a notice.
var factorWords = map[string]string{
	"totp":     "an authenticator app",
	"passkey":  "a passkey",
	"email":    "an email address",
	"sms":      "a phone number",
	"recovery": "a recovery code",
}

// Notify sends the security notice n to n.To as a short text, queued like a
// code but without a challenge ID, so the delivery log records it and no
// challenge is touched. It carries no code, link, time or IP address: a
// text should stay short. The number must pass the same checks as for a
// code (ParseNumber, allowed_countries). It waits up to the delivery wait
// for the outcome: nil means sent or still being tried; an error wrapping
// authenticators.ErrDeliveryFailed means the notice will not arrive (an
// unknown event or factor, an invalid number or country, a permanent
// provider failure, all retries failed, a full queue).
func (c *Config) Notify(ctx context.Context, n authenticators.Notice) error {
	if err := c.ch.Ready(); err != nil {
		return err
	}
	to, masked, err := c.destination(n.To)
	if err != nil {
		return c.ch.Fail("", n.User, masked, err)
	}
	body, err := noticeText(n)
	if err != nil {
		return c.ch.Fail("", n.User, masked, err)
	}
	return c.ch.Send(ctx, delivery.Job[Text]{
		User:    n.User,
		To:      masked,
		Payload: Text{To: to, Body: body},
	})
}

// noticeText renders the text of n.
func noticeText(n authenticators.Notice) (string, error) {
	format, ok := noticeTexts[n.Event]
	if !ok {
		return "", fmt.Errorf("unknown notice event %q", n.Event)
	}
	var factor string
	switch n.Event {
	case authenticators.NoticeFactorAdded, authenticators.NoticeFactorRemoved:
		if factor = factorWords[n.Factor]; factor == "" {
			return "", fmt.Errorf("unknown factor %q", n.Factor)
		}
	}
	return fmt.Sprintf(format, noticeSite(n.Site), factor) + noticeAdvice, nil
}

// noticeSite is site on one line and at most maxSiteName characters, or
// "this site" when empty.
func noticeSite(site string) string {
	site = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(site, "")))
	if site == "" {
		return "this site"
	}
	if utf8.RuneCountInString(site) > maxSiteName {
		site = string([]rune(site)[:maxSiteName-3]) + "..."
	}
	return site
}

// Interface guard
var _ authenticators.Notifier = (*Config)(nil)
