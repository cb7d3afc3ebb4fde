package email

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	netmail "net/mail"
	"strings"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

// Method is the method name of the email authenticator.
const Method = "email"

// What a message carries (Config.Send).
const (
	SendCode = authenticators.SendCode
	SendLink = authenticators.SendLink
)

// DefaultLinkTTL is how long a link stays valid in link mode.
const DefaultLinkTTL = 10 * time.Minute

// defaults are where email differs from the defaults every channel shares
// (package authenticators): a code lives 10 minutes, at most 100 messages
// an hour and 20 in 5 minutes.
var defaults = authenticators.Defaults{CodeTTL: 10 * time.Minute, LinkTTL: DefaultLinkTTL, PerHour: 100, Per5m: 20}

// Provision applies the defaults, loads the transport module, parses the
// templates and the sender, and starts the delivery queue. Every delivery
// attempt is logged once, by the channel, and handed to report, if not nil
// (the delivery log); report is called from the queue's goroutines.
func (c *Config) Provision(ctx caddy.Context, report func(authenticators.DeliveryResult)) error {
	if c.ch.Logger == nil {
		c.ch.Logger = ctx.Logger()
	}
	defaults.Apply(&c.Send, &c.LinkTTL, &c.Limits)
	c.Delivery = c.Delivery.WithDefaults()

	if len(c.TransportRaw) == 0 {
		return errors.New("email: a transport is required (smtp or outbox)")
	}
	t, err := delivery.LoadModule[Transport](ctx, c, "TransportRaw", Method, "email transport")
	if err != nil {
		return err
	}
	c.transport = t
	if ds, ok := t.(DefaultSender); ok && c.From == "" {
		c.From = ds.DefaultFrom()
	}

	if c.tmpl, err = loadTemplates(c.Templates); err != nil {
		return fmt.Errorf("email: %w", err)
	}
	if err := c.Validate(); err != nil {
		return err
	}
	if c.from, err = parseFrom(c.From); err != nil {
		return fmt.Errorf("email: from: %w", err)
	}

	worker := func() (delivery.Worker[*Message], error) { return newWorker(t, c.ch.Logger) }
	if err := c.ch.Start(c.Delivery, delivery.Options[*Message]{Method: Method, NewWorker: worker, Report: report}); err != nil {
		return fmt.Errorf("email: %w", err)
	}
	return nil
}

// Validate checks the configuration without changing it. Zero values
// stand for their defaults, so it may run before or after Provision.
func (c *Config) Validate() error {
	if err := cmp.Or(authenticators.CheckSettings(c.Send, c.LinkTTL, &c.Limits), c.Delivery.Validate()); err != nil {
		return fmt.Errorf("email: %w", err)
	}

	if c.From == "" {
		if c.needsFrom() {
			return errors.New("email: from is required with the smtp transport")
		}
	} else if _, err := parseFrom(c.From); err != nil {
		return fmt.Errorf("email: from: %w", err)
	}

	tmpl := c.tmpl
	if tmpl == nil {
		var err error
		if tmpl, err = loadTemplates(c.Templates); err != nil {
			return fmt.Errorf("email: %w", err)
		}
	}
	if c.Send == SendLink {
		if err := tmpl.showLink(); err != nil {
			return fmt.Errorf("email: send link: %w", err)
		}
	}
	return nil
}

// needsFrom reports whether the transport has no default sender.
func (c *Config) needsFrom() bool {
	if c.transport != nil {
		ds, ok := c.transport.(DefaultSender)
		return !ok || ds.DefaultFrom() == ""
	}
	var peek struct {
		Transport string `json:"transport"`
	}
	_ = json.Unmarshal(c.TransportRaw, &peek)
	return peek.Transport != "outbox"
}

// Cleanup stops the delivery workers, waiting for them, and closes their
// SMTP connections. It is idempotent and safe after a failed Provision.
func (c *Config) Cleanup() error {
	c.ch.Stop()
	return nil
}

// Method returns "email".
func (*Config) Method() string { return Method }

// Mask hides most of an address; see the package function Mask.
func (*Config) Mask(to string) string { return Mask(to) }

// Deliver renders the message for m.To and queues it. It waits up to the
// delivery wait for the outcome: nil means sent or still being tried; an
// error wrapping authenticators.ErrDeliveryFailed means the message will
// not arrive (an invalid address, a permanent SMTP failure, all retries
// failed, a full queue).
func (c *Config) Deliver(ctx context.Context, m authenticators.Message) error {
	if err := c.ch.Ready(); err != nil {
		return err
	}
	to, err := ParseAddress(m.To)
	if err != nil {
		return c.ch.Fail(m.ChallengeID, m.User, Mask(m.To), err)
	}
	masked := Mask(to)
	msg, err := c.message(m, to, masked, i18n.FromContext(ctx))
	if err != nil {
		return c.ch.Fail(m.ChallengeID, m.User, masked, delivery.Mask(err, maskText(err.Error(), m.Secret())))
	}
	return c.ch.Send(ctx, delivery.Job[*Message]{
		ChallengeID: m.ChallengeID,
		User:        m.User,
		To:          masked,
		Payload:     msg,
	})
}

// message renders the templates and builds the message.
func (c *Config) message(m authenticators.Message, to, masked string, lang *i18n.Lang) (*Message, error) {
	if m.Code == "" && m.Link == "" {
		return nil, errors.New("message has no code or link")
	}
	if m.Link != "" {
		if err := authenticators.CheckLink(m.Link); err != nil {
			return nil, err
		}
	}
	ttl := m.TTL
	if ttl <= 0 {
		ttl = time.Duration(c.CodeTTL)
		if m.Code == "" {
			ttl = time.Duration(c.LinkTTL)
		}
	}
	d := TemplateData{
		Code:      m.Code,
		Link:      m.Link,
		Site:      siteName(m.Site),
		To:        masked,
		User:      m.User,
		ExpiresIn: lang.Duration(ttl),
		lang:      lang,
	}
	var subject, text, html string
	var err error
	if c.tmpl.prep != nil && d.Link == "" {
		var r *renderedMessage
		if r, err = c.tmpl.prep.entry(c.tmpl, d); err != nil {
			return nil, err
		}
		subject, text, html = c.tmpl.prep.fill(r, d.Code)
		if w := r.wireFor(c.from, c.tmpl.prep.placeholder, len(d.Code)); w != nil {
			if msg, err := c.wireMsg(w, to, subject, text, html, d.Code); err != nil || msg != nil {
				return msg, err
			}
		}
	} else {
		subject, text, html, err = c.tmpl.render(d)
	}
	if err != nil {
		return nil, err
	}
	msg, err := c.newMsg(to, subject, text, html)
	if err != nil {
		return nil, err
	}
	msg.Code, msg.Link = m.Code, m.Link
	return msg, nil
}

// wireMsg returns the code message to with its prepared form w, or nil
// when its values do not fit w's slots (wireMessage.fits).
func (c *Config) wireMsg(w *wireMessage, to, subject, text, html, code string) (*Message, error) {
	id, err := messageID(c.from.Address)
	if err != nil {
		return nil, err
	}
	v := wireValues{code: code, to: to, date: time.Now().Format(time.RFC1123Z), id: id[:strings.IndexByte(id, '@')]}
	if !w.fits(&v) {
		return nil, nil
	}
	return &Message{From: c.from.Address, To: to, Subject: subject, Text: text, HTML: html, Code: code, wire: w, vals: v}, nil
}

// newMsg builds a message to the one recipient to, an address returned
// by ParseAddress (which net/mail has parsed already), with a text body
// and an HTML alternative, setting every header through go-mail, which
// encodes header values.
func (c *Config) newMsg(to, subject, text, html string) (*Message, error) {
	id, err := messageID(c.from.Address)
	if err != nil {
		return nil, err
	}
	msg := goMailMsg(msgFields{from: c.from, to: to, subject: subject, text: text, html: html,
		date: time.Now().Format(time.RFC1123Z), id: id})
	return &Message{From: c.from.Address, To: to, Subject: subject, Text: text, HTML: html, msg: msg}, nil
}

// siteName is site on one line, or "this site" when empty.
func siteName(site string) string {
	if site = oneLine(site); site == "" {
		return "this site"
	}
	return site
}

// messageID returns a random Message-ID value in the sender's domain.
func messageID(from string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("reading random message id: %w", err)
	}
	domain := "localhost"
	if at := strings.LastIndexByte(from, '@'); at >= 0 {
		domain = from[at+1:]
	}
	return hex.EncodeToString(b[:]) + "@" + domain, nil
}

// parseFrom parses the sender: one address with an optional display name,
// no control characters.
func parseFrom(s string) (*netmail.Address, error) {
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return nil, errors.New("contains control characters")
	}
	if u := unquoted(s); strings.ContainsAny(u, ":;,") {
		return nil, fmt.Errorf("%q is not a single address (quote a display name with ':', ';' or ',')", s)
	}
	a, err := netmail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: %w", s, err)
	}
	addr, err := ParseAddress(a.Address)
	if err != nil {
		return nil, fmt.Errorf("parsing %q: %w", s, err)
	}
	return &netmail.Address{Name: a.Name, Address: addr}, nil
}

// unquoted returns s without its quoted strings, so that group syntax and
// lists can be told from punctuation inside a quoted display name.
func unquoted(s string) string {
	var b strings.Builder
	inQuote, escaped := false, false
	for _, r := range s {
		switch {
		case escaped:
			escaped = false
		case inQuote && r == '\\':
			escaped = true
		case r == '"':
			inQuote = !inQuote
		case !inQuote:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Interface guard
var _ authenticators.Sender = (*Config)(nil)
