package sms

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

// maxSiteName bounds the site name in a notice, so a notice stays within
// two SMS segments whatever the site is called.
const maxSiteName = 60

// Notify sends the security notice n to n.To as a short text in the
// language of ctx (i18n.WithLang, else English), queued like a
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
	body, err := noticeText(n, i18n.FromContext(ctx))
	if err != nil {
		return c.ch.Fail("", n.User, masked, err)
	}
	return c.ch.Send(ctx, delivery.Job[Text]{
		User:    n.User,
		To:      masked,
		Payload: Text{To: to, Body: body},
	})
}

// noticeText renders the text of n in lang: the subject of the notice
// email and the advice (security.sms).
func noticeText(n authenticators.Notice, lang *i18n.Lang) (string, error) {
	key := "security.subject." + n.Key()
	if !lang.Has(key) {
		return "", fmt.Errorf("unknown notice event %q or factor %q", n.Event, n.Factor)
	}
	site := noticeSite(n.Site)
	if site == "" {
		site = lang.T("security.this_site")
	}
	return lang.T("security.sms", "what", lang.T(key, "site", site)), nil
}

// noticeSite is site on one line and at most maxSiteName characters.
func noticeSite(site string) string {
	site = strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(site, "")))
	if utf8.RuneCountInString(site) > maxSiteName {
		site = string([]rune(site)[:maxSiteName-3]) + "..."
	}
	return site
}

// Interface guard
var _ authenticators.Notifier = (*Config)(nil)
