package email

import (
	"context"
	"fmt"
	htmltemplate "html/template"
	"net/netip"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

// Built-in notice templates. The subject and the sentence that opens the
// message (What) say what happened; the bodies around that sentence say
// when, from which IP address, and what to do if it was not the user, all
// in the user's language (the catalog's security.* messages).
const (
	noticeSubject = `{{.Subject}}`

	noticeText = `{{.What}}

{{if .User}}{{.T "security.account"}}: {{.User}}
{{end}}{{.T "security.when"}}: {{.Time}}
{{if .ClientIP}}{{.T "security.ip"}}: {{.ClientIP}}
{{end}}
{{.T "security.if_you"}}
{{.T "security.if_not_you"}}

{{.T "security.automatic"}}
`

	noticeHTML = `<!DOCTYPE html>
<html lang="{{.Lang}}" dir="{{.Dir}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Subject}}</title>
</head>
<body style="margin:0;padding:24px;font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2328;background:#ffffff;">
<p style="font-size:16px;margin:0 0 16px;">{{.What}}</p>
<table role="presentation" style="font-size:16px;margin:0 0 16px;border-collapse:collapse;">
{{if .User}}<tr><td style="padding:0 16px 4px 0;color:#57606a;">{{.T "security.account"}}</td><td style="padding:0 0 4px;">{{.User}}</td></tr>
{{end}}<tr><td style="padding:0 16px 4px 0;color:#57606a;">{{.T "security.when"}}</td><td style="padding:0 0 4px;" dir="ltr">{{.Time}}</td></tr>
{{if .ClientIP}}<tr><td style="padding:0 16px 4px 0;color:#57606a;">{{.T "security.ip"}}</td><td style="padding:0 0 4px;" dir="ltr">{{.ClientIP}}</td></tr>
{{end}}</table>
<p style="font-size:16px;margin:0 0 8px;">{{.T "security.if_you"}}</p>
<p style="font-size:16px;font-weight:bold;margin:0 0 16px;">{{.T "security.if_not_you"}}</p>
<p style="font-size:14px;color:#57606a;margin:0;">{{.T "security.automatic"}}</p>
</body>
</html>
`
)

// noticeTimeLayout writes a notice's time the same way in every
// language: no day or month names to translate.
const noticeTimeLayout = "2006-01-02 15:04:05 UTC"

// noticeData is what the notice templates receive. Every field is a single
// line of plain text.
type noticeData struct {
	// Subject and What say what happened, in the user's language: the
	// subject line, and the sentence that opens the message.
	Subject, What string
	// User is the canonical user name; may be empty.
	User string
	// Time is when it happened, in UTC, e.g. "2006-01-02 15:04:05 UTC".
	Time string
	// ClientIP is the client's IP address; empty when unknown.
	ClientIP string

	lang *i18n.Lang
}

// T is the message key in the user's language.
func (d noticeData) T(key string) string { return d.lang.T(key) }

// Lang is the user's language tag ("de", "pt-BR").
func (d noticeData) Lang() string { return d.lang.Tag() }

// Dir is the writing direction of the user's language, "ltr" or "rtl".
func (d noticeData) Dir() string { return d.lang.Dir() }

// noticeTemplates are the parsed notice templates. They are built in, so
// a parse error is a bug of this package.
var noticeTemplates = &templates{
	subject: texttemplate.Must(texttemplate.New("subject").Parse(noticeSubject)),
	text:    texttemplate.Must(texttemplate.New("text").Parse(noticeText)),
	html:    htmltemplate.Must(htmltemplate.New("html").Parse(noticeHTML)),
}

// Notify renders the security notice n for n.To, in the language of ctx
// (i18n.WithLang, else English), and queues it like a code, without a
// challenge ID, so the delivery log records it and no challenge is
// touched. It waits up to the delivery wait for the outcome: nil means
// sent or still being tried; an error wrapping
// authenticators.ErrDeliveryFailed means the notice will not arrive (an
// unknown event or factor, an invalid address, a permanent SMTP failure,
// all retries failed, a full queue). A zero n.Time stands for now; a
// ClientIP that is not an IP address is left out.
func (c *Config) Notify(ctx context.Context, n authenticators.Notice) error {
	if err := c.ch.Ready(); err != nil {
		return err
	}
	to, err := ParseAddress(n.To)
	if err != nil {
		return c.ch.Fail("", n.User, Mask(n.To), err)
	}
	masked := Mask(to)
	msg, err := c.notice(n, to, i18n.FromContext(ctx))
	if err != nil {
		return c.ch.Fail("", n.User, masked, delivery.Mask(err, maskText(err.Error(), "")))
	}
	return c.ch.Send(ctx, delivery.Job[*Message]{
		User:    n.User,
		To:      masked,
		Payload: msg,
	})
}

// notice renders the notice n in lang and builds the message.
func (c *Config) notice(n authenticators.Notice, to string, lang *i18n.Lang) (*Message, error) {
	key := n.Key()
	if !lang.Has("security.subject."+key) || !lang.Has("security.what."+key) {
		return nil, fmt.Errorf("unknown notice event %q or factor %q", n.Event, n.Factor)
	}
	site := oneLine(n.Site)
	if site == "" {
		site = lang.T("security.this_site")
	}
	t := n.Time
	if t.IsZero() {
		t = time.Now()
	}
	data := noticeData{
		Subject:  lang.T("security.subject."+key, "site", site),
		What:     lang.T("security.what."+key, "site", site),
		User:     oneLine(n.User),
		Time:     t.UTC().Format(noticeTimeLayout),
		ClientIP: noticeIP(n.ClientIP),
		lang:     lang,
	}
	subject, text, html, err := noticeTemplates.render(data)
	if err != nil {
		return nil, err
	}
	return c.newMsg(to, subject, text, html)
}

// noticeIP returns s, an IP address or an IP address and port, as the
// address alone in canonical form without a zone, or "" when s is neither.
func noticeIP(s string) string {
	s = strings.TrimSpace(s)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return ""
		}
		a = ap.Addr()
	}
	return a.WithZone("").Unmap().String()
}

// Interface guard
var _ authenticators.Notifier = (*Config)(nil)
