package email

import (
	"context"
	"fmt"
	htmltemplate "html/template"
	"net/netip"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// Built-in notice templates. Each event has its own subject and a sentence
// saying what happened (the "what" template); the text and HTML bodies
// around that sentence say when, from which IP address, and what to do if
// it was not the user.
const (
	noticeText = `{{template "what" .}}

{{if .User}}Account:    {{.User}}
{{end}}When:       {{.Time}}
{{if .ClientIP}}IP address: {{.ClientIP}}
{{end}}
If this was you, there is nothing to do.
If this was not you, contact the administrator now.

This is an automatic security notice. It contains no code and no link.
`

	noticeHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Security notice for {{.Site}}</title>
</head>
<body style="margin:0;padding:24px;font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2328;background:#ffffff;">
<p style="font-size:16px;margin:0 0 16px;">{{template "what" .}}</p>
<table role="presentation" style="font-size:16px;margin:0 0 16px;border-collapse:collapse;">
{{if .User}}<tr><td style="padding:0 16px 4px 0;color:#57606a;">Account</td><td style="padding:0 0 4px;">{{.User}}</td></tr>
{{end}}<tr><td style="padding:0 16px 4px 0;color:#57606a;">When</td><td style="padding:0 0 4px;">{{.Time}}</td></tr>
{{if .ClientIP}}<tr><td style="padding:0 16px 4px 0;color:#57606a;">IP address</td><td style="padding:0 0 4px;">{{.ClientIP}}</td></tr>
{{end}}</table>
<p style="font-size:16px;margin:0 0 8px;">If this was you, there is nothing to do.</p>
<p style="font-size:16px;font-weight:bold;margin:0 0 16px;">If this was not you, contact the administrator now.</p>
<p style="font-size:14px;color:#57606a;margin:0;">This is an automatic security notice. It contains no code and no link.</p>
</body>
</html>
`
)

// noticeEvents are the subject and "what" templates of each event.
var noticeEvents = map[string]struct{ subject, what string }{
	authenticators.NoticeFactorAdded: {
		subject: `Security notice: {{.Factor}} was added to your account on {{.Site}}`,
		what:    `{{capitalize .Factor}} was added to your account on {{.Site}}.`,
	},
	authenticators.NoticeFactorRemoved: {
		subject: `Security notice: {{.Factor}} was removed from your account on {{.Site}}`,
		what:    `{{capitalize .Factor}} was removed from your account on {{.Site}}.`,
	},
	authenticators.NoticeRecoveryCodeUsed: {
		subject: `Security notice: a recovery code was used to sign in to your account on {{.Site}}`,
		what:    `A recovery code was used to sign in to your account on {{.Site}}. That code cannot be used again.`,
	},
	authenticators.NoticeRecoveryCodesRenewed: {
		subject: `Security notice: new recovery codes were generated for your account on {{.Site}}`,
		what:    `New recovery codes were generated for your account on {{.Site}}. The old codes no longer work.`,
	},
	authenticators.NoticeSessionsEnded: {
		subject: `Security notice: devices were signed out of your account on {{.Site}}`,
		what:    `Devices were signed out of your account on {{.Site}} from its account page. They have to sign in with a code again.`,
	},
}

// factorWords name the factors of NoticeFactorAdded and
// NoticeFactorRemoved in the notice.
var factorWords = map[string]string{
	"totp":     "an authenticator app",
	"passkey":  "a passkey",
	"email":    "an email address",
	"sms":      "a phone number",
	"recovery": "a recovery code",
}

// noticeData is what the notice templates receive. Every field is a single
// line of plain text.
type noticeData struct {
	// User is the canonical user name; may be empty.
	User string
	// Site names the protected site, "this site" when unknown.
	Site string
	// Factor is the factor in words, e.g. "an authenticator app"; empty
	// for the recovery code events.
	Factor string
	// Time is when it happened, in UTC, e.g. "Mon, 02 Jan 2006 15:04:05 UTC".
	Time string
	// ClientIP is the client's IP address; empty when unknown.
	ClientIP string
}

// noticeTemplates are the parsed templates of each event. They are built
// in, so a parse error is a bug of this package.
var noticeTemplates = parseNoticeTemplates()

func parseNoticeTemplates() map[string]*templates {
	funcs := map[string]any{"capitalize": capitalize}
	tps := make(map[string]*templates, len(noticeEvents))
	for event, t := range noticeEvents {
		text := texttemplate.Must(texttemplate.New("text").Funcs(funcs).Parse(noticeText))
		texttemplate.Must(text.New("what").Parse(t.what))
		html := htmltemplate.Must(htmltemplate.New("html").Funcs(funcs).Parse(noticeHTML))
		htmltemplate.Must(html.New("what").Parse(t.what))
		tps[event] = &templates{
			subject: texttemplate.Must(texttemplate.New("subject").Parse(t.subject)),
			text:    text.Lookup("text"),
			html:    html.Lookup("html"),
		}
	}
	return tps
}

// Notify renders the security notice n for n.To and queues it like a code,
// without a challenge ID, so the delivery log records it and no challenge
// is touched. It waits up to the delivery wait for the outcome: nil means
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
	msg, err := c.notice(n, to)
	if err != nil {
		return c.ch.Fail("", n.User, masked, delivery.Mask(err, maskText(err.Error(), "")))
	}
	return c.ch.Send(ctx, delivery.Job[*Message]{
		User:    n.User,
		To:      masked,
		Payload: msg,
	})
}

// notice renders the templates of n's event and builds the message.
func (c *Config) notice(n authenticators.Notice, to string) (*Message, error) {
	tp, ok := noticeTemplates[n.Event]
	if !ok {
		return nil, fmt.Errorf("unknown notice event %q", n.Event)
	}
	data := noticeData{
		User:     oneLine(n.User),
		Site:     siteName(n.Site),
		ClientIP: noticeIP(n.ClientIP),
	}
	switch n.Event {
	case authenticators.NoticeFactorAdded, authenticators.NoticeFactorRemoved:
		if data.Factor = factorWords[n.Factor]; data.Factor == "" {
			return nil, fmt.Errorf("unknown factor %q", n.Factor)
		}
	}
	t := n.Time
	if t.IsZero() {
		t = time.Now()
	}
	data.Time = t.UTC().Format(time.RFC1123)

	subject, text, html, err := tp.render(data)
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

// capitalize returns s with its first letter in upper case.
func capitalize(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if size == 0 {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}

// Interface guard
var _ authenticators.Notifier = (*Config)(nil)
