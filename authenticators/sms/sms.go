package sms

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

// Method is the method name of the SMS authenticator.
const Method = "sms"

// What a text carries (Config.Send).
const (
	SendCode = authenticators.SendCode
	SendLink = authenticators.SendLink
)

// Defaults applied by Provision, where SMS differs from the defaults every
// channel shares (package authenticators).
const (
	// DefaultLinkTTL is how long a link stays valid in link mode: a text
	// is read at once, and opening the link and confirming takes longer
	// than typing a code.
	DefaultLinkTTL = 5 * time.Minute
	// DefaultPerCountryPerHour caps the texts to one country per hour.
	DefaultPerCountryPerHour = 20
)

// defaults are the defaults of the Curity SMS OTP seed: a code lives one
// minute; texts cost money, so the global caps are lower than email's (50
// an hour, 10 in 5 minutes).
var defaults = authenticators.Defaults{CodeTTL: time.Minute, LinkTTL: DefaultLinkTTL, PerHour: 50, Per5m: 10}

// Validate checks the configuration without changing it. Zero values
// stand for their defaults, so it may run before or after Provision.
func (c *Config) Validate() error {
	if err := cmp.Or(authenticators.CheckSettings(c.Send, c.LinkTTL, &c.Limits), c.Delivery.Validate()); err != nil {
		return fmt.Errorf("sms: %w", err)
	}
	seen := make(map[string]bool, len(c.AllowedCountries))
	for _, cc := range c.AllowedCountries {
		if !ValidCountry(cc) {
			return fmt.Errorf("sms: allowed_countries: %q is not an ISO 3166-1 alpha-2 code with phone numbers", cc)
		}
		up := strings.ToUpper(cc)
		if seen[up] {
			return fmt.Errorf("sms: allowed_countries: %q is listed twice", cc)
		}
		seen[up] = true
	}
	if c.msgs == nil {
		if _, err := parseMessages(c.Message, c.Messages); err != nil {
			return fmt.Errorf("sms: %w", err)
		}
	}
	if c.linkMsgs == nil {
		if _, err := parseLinkMessages(c.LinkMessage, c.LinkMessages); err != nil {
			return fmt.Errorf("sms: %w", err)
		}
	}
	return nil
}

// Provision applies the defaults, loads the provider module, parses the
// message texts and starts the delivery queue. Every delivery attempt is
// logged once, by the channel, and handed to report, if not nil (the
// delivery log); report is called from the queue's goroutines.
func (c *Config) Provision(ctx caddy.Context, report func(authenticators.DeliveryResult)) error {
	if c.ch.Logger == nil {
		c.ch.Logger = ctx.Logger()
	}
	c.applyDefaults()

	if len(c.ProviderRaw) == 0 {
		return errors.New("sms: a provider is required (twilio, webhook or outbox)")
	}
	if err := c.Validate(); err != nil {
		return err
	}
	var err error
	if c.msgs, err = parseMessages(c.Message, c.Messages); err != nil {
		return fmt.Errorf("sms: %w", err)
	}
	if c.linkMsgs, err = parseLinkMessages(c.LinkMessage, c.LinkMessages); err != nil {
		return fmt.Errorf("sms: %w", err)
	}
	c.allowed = make([]string, len(c.AllowedCountries))
	for i, cc := range c.AllowedCountries {
		c.allowed[i] = strings.ToUpper(cc)
	}

	p, err := delivery.LoadModule[Provider](ctx, c, "ProviderRaw", Method, "sms provider")
	if err != nil {
		return err
	}
	c.provider = p

	newWorker := func() (delivery.Worker[Text], error) { return providerWorker{p: p}, nil }
	if err := c.ch.Start(c.Delivery, delivery.Options[Text]{Method: Method, NewWorker: newWorker, Report: report}); err != nil {
		return fmt.Errorf("sms: %w", err)
	}
	return nil
}

// applyDefaults sets the zero settings to their defaults.
func (c *Config) applyDefaults() {
	defaults.Apply(&c.Send, &c.LinkTTL, &c.Limits)
	c.Delivery = c.Delivery.WithDefaults()
	if c.Message == "" {
		c.Message = DefaultMessage
	}
	if c.PerCountryPerHour == 0 {
		c.PerCountryPerHour = DefaultPerCountryPerHour
	}
}

// Cleanup stops the delivery workers and waits for them. It is idempotent
// and safe after a failed Provision. The provider module is cleaned up by
// the Caddy context that loaded it.
func (c *Config) Cleanup() error {
	c.ch.Stop()
	return nil
}

// Method returns "sms".
func (*Config) Method() string { return Method }

// Mask hides most of a phone number; see the package function Mask.
func (*Config) Mask(to string) string { return Mask(to) }

// AllowedCountry reports whether region, an ISO 3166-1 alpha-2 code, is
// in allowed_countries (every country when the list is empty).
func (c *Config) AllowedCountry(region string) bool {
	if c.allowed != nil {
		return AllowedCountry(region, c.allowed)
	}
	return AllowedCountry(region, c.AllowedCountries)
}

// CheckNumber validates s with ParseNumber and checks its country against
// allowed_countries. It returns the number in E.164 form and its country;
// errors wrap ErrInvalidNumber or ErrCountryNotAllowed.
func (c *Config) CheckNumber(s string) (e164, region string, err error) {
	e164, region, err = ParseNumber(s)
	if err != nil {
		return "", "", err
	}
	if !c.AllowedCountry(region) {
		return "", "", fmt.Errorf("%w: %s", ErrCountryNotAllowed, region)
	}
	return e164, region, nil
}

// Render returns the text of a code message for code in the language that
// best matches lang (an Accept-Language value or a BCP 47 tag; empty for
// the default text).
func (c *Config) Render(code, lang string) (string, error) {
	if code == "" {
		return "", errors.New("message has no code")
	}
	if len(code) > authenticators.MaxCodeInput || strings.IndexFunc(code, unicode.IsControl) >= 0 {
		return "", errors.New("code has control characters or is too long")
	}
	msgs := c.msgs
	if msgs == nil {
		var err error
		if msgs, err = parseMessages(c.Message, c.Messages); err != nil {
			return "", err
		}
	}
	return msgs.pick(lang).expand(code), nil
}

// RenderLink returns the text of a link message for link in the language
// that best matches lang. The link must pass authenticators.CheckLink, and
// the text must fit in MaxBodyLength characters.
func (c *Config) RenderLink(link, lang string) (string, error) {
	if err := authenticators.CheckLink(link); err != nil {
		return "", err
	}
	msgs := c.linkMsgs
	if msgs == nil {
		var err error
		if msgs, err = parseLinkMessages(c.LinkMessage, c.LinkMessages); err != nil {
			return "", err
		}
	}
	body := msgs.pick(lang).expand(link)
	if n := utf8.RuneCountInString(body); n > MaxBodyLength {
		return "", fmt.Errorf("link message is %d characters long, more than %d", n, MaxBodyLength)
	}
	return body, nil
}

// renderLink is RenderLink in the language of ctx: the configured texts
// when there are any, else the built-in text of the user's language
// (i18n.WithLang), else DefaultLinkMessage.
func (c *Config) renderLink(ctx context.Context, link string) (string, error) {
	if c.LinkMessage != "" || len(c.LinkMessages) > 0 {
		return c.RenderLink(link, languageFrom(ctx))
	}
	if err := authenticators.CheckLink(link); err != nil {
		return "", err
	}
	body := i18n.FromContext(ctx).T("sms.link", "link", link)
	if n := utf8.RuneCountInString(body); n > MaxBodyLength {
		return "", fmt.Errorf("link message is %d characters long, more than %d", n, MaxBodyLength)
	}
	return body, nil
}

// Deliver validates m.To (ParseNumber, allowed_countries), renders the
// text of its code, or else of its link, in the language WithLanguage put
// in ctx, and queues it. It waits up to the delivery wait for the outcome:
// nil means sent or still being tried; an error wrapping
// authenticators.ErrDeliveryFailed means the text will not arrive (an
// invalid number or country, a permanent provider failure, all retries
// failed, a full queue). Every attempt is reported with the number masked;
// the code and the link's token are never reported or logged.
func (c *Config) Deliver(ctx context.Context, m authenticators.Message) error {
	if err := c.ch.Ready(); err != nil {
		return err
	}
	to, masked, err := c.destination(m.To)
	if err != nil {
		return c.ch.Fail(m.ChallengeID, m.User, masked, err)
	}
	var body string
	if m.Code == "" && m.Link != "" {
		body, err = c.renderLink(ctx, m.Link)
	} else {
		body, err = c.Render(m.Code, languageFrom(ctx))
	}
	if err != nil {
		return c.ch.Fail(m.ChallengeID, m.User, masked, delivery.Mask(err, maskText(err.Error(), m.Secret(), to)))
	}
	return c.ch.Send(ctx, delivery.Job[Text]{
		ChallengeID: m.ChallengeID,
		User:        m.User,
		To:          masked,
		Payload:     Text{To: to, Body: body, Code: m.Code, Link: m.Link},
	})
}

// destination checks a destination for Deliver and Notify and returns it
// in E.164 form and masked. On error, masked is the mask of the input.
func (c *Config) destination(s string) (to, masked string, err error) {
	to, _, err = c.CheckNumber(s)
	if err != nil {
		return "", Mask(s), err
	}
	return to, Mask(to), nil
}

// Interface guard
var _ authenticators.Sender = (*Config)(nil)
