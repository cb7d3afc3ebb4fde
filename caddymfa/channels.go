package caddymfa

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
)

// methodSMS is the method of codes by text message.
const methodSMS = "sms"

// channel is a method that sends a code or link to an address on file,
// built once at provision from its block: what sends it, under which
// limits, whether it sends links and for how long, whether users may
// register an address for it, and how such an address is checked. The
// handler asks the channel, never which method it is.
type channel struct {
	method string
	sender authenticators.Sender
	limits authenticators.Limits
	// linkTTL is the lifetime of a link in link mode, 0 in code mode.
	linkTTL time.Duration
	// registration is nil when users may not register an address.
	registration *authenticators.Registration
	// checkAddress validates an address a user wants to register: the
	// canonical form, or what is wrong with it in words for the page.
	checkAddress func(input string) (address, problem string)
	// country is the region of a destination, for a per-country cap of
	// perCountry sends an hour ("" and 0 when the channel has none).
	country    func(dest string) string
	perCountry int
	// deliverable reports whether an address on file may be used (an SMS
	// number in an allowed country); nil: every address.
	deliverable func(dest string) bool
}

// phoneCountry is the region of an E.164 number, for the per-country cap.
func phoneCountry(number string) string {
	_, region, err := sms.ParseNumber(number)
	if err != nil {
		return ""
	}
	return region
}

// countryOf returns the region of dest and the cap for it, if the channel
// has a per-country cap.
func (ch channel) countryOf(dest string) (string, int) {
	if ch.country == nil || dest == "" {
		return "", 0
	}
	return ch.country(dest), ch.perCountry
}

// emailChannel and smsChannel build the channels of the configured
// blocks; this is the one place that knows how they differ.
func emailChannel(c *email.Config) *channel {
	ch := &channel{method: methodEmail, sender: c, limits: c.Limits, registration: c.Registration}
	if c.Send == email.SendLink {
		ch.linkTTL = cmp.Or(time.Duration(c.LinkTTL), email.DefaultLinkTTL)
	}
	ch.checkAddress = func(input string) (string, string) {
		addr, err := email.ParseAddress(input)
		if err != nil {
			return "", "Enter a valid email address."
		}
		return addr, ""
	}
	return ch
}

func smsChannel(c *sms.Config) *channel {
	ch := &channel{method: methodSMS, sender: c, limits: c.Limits, registration: c.Registration,
		country: phoneCountry, perCountry: c.PerCountryPerHour}
	ch.deliverable = func(number string) bool {
		_, region, err := sms.ParseNumber(number)
		return err == nil && c.AllowedCountry(region)
	}
	if c.Send == sms.SendLink {
		ch.linkTTL = cmp.Or(time.Duration(c.LinkTTL), sms.DefaultLinkTTL)
	}
	ch.checkAddress = func(input string) (string, string) {
		number, _, err := c.CheckNumber(input)
		if errors.Is(err, sms.ErrCountryNotAllowed) {
			return "", "Codes cannot be sent to numbers in that country."
		}
		if err != nil {
			return "", "Enter the number in international form, starting with + and the country code."
		}
		return number, ""
	}
	return ch
}

// methods are the configured authenticators as the flow sees them: the
// message channels, email first, and the issuer of authenticator apps.
// newMethods builds it at provision; it holds no state.
type methods struct {
	list []*channel
	// values are copies of the channels of list, made by build.
	values  []channel
	totp    *totp.Config
	baseURL *url.URL
	prefix  string
}

func newMethods(e *email.Config, s *sms.Config, t *totp.Config, baseURL *url.URL, prefix string) *methods {
	m := &methods{totp: t, baseURL: baseURL, prefix: prefix}
	m.build(e, s)
	return m
}

// build makes the channels of the blocks. Provision calls it again once
// the blocks are provisioned, so the channels carry their defaults.
func (m *methods) build(e *email.Config, s *sms.Config) {
	m.list = nil
	if e != nil {
		m.list = append(m.list, emailChannel(e))
	}
	if s != nil {
		m.list = append(m.list, smsChannel(s))
	}
	m.values = make([]channel, len(m.list))
	for i, ch := range m.list {
		m.values[i] = *ch
	}
}

// channel returns the configured message method of that name.
func (m *methods) channel(method string) (channel, bool) {
	for _, ch := range m.list {
		if ch.method == method {
			return *ch, true
		}
	}
	return channel{}, false
}

// channels are the configured message methods, email first.
// The slice is shared: callers read it and must not change it.
func (m *methods) channels() []channel {
	return m.values[:len(m.values):len(m.values)]
}

// limitsFor returns the limits of a message method (zero for others).
func (m *methods) limitsFor(method string) authenticators.Limits {
	ch, _ := m.channel(method)
	return ch.limits
}

// severalMethods reports whether a user may have more than one method, so
// the one used last is worth remembering.
func (m *methods) severalMethods() bool {
	return m.totp != nil || len(m.list) > 1
}

// registrationOn reports whether users may register an address.
func (m *methods) registrationOn() bool {
	for _, ch := range m.list {
		if ch.registration != nil {
			return true
		}
	}
	return false
}

// linkURL is the link a message carries: base_url, path_prefix, /link and
// the token; never built from the request's Host or X-Forwarded-* (link
// mode needs base_url). "" for no token. The token is the URL's fragment,
// which browsers never send: it cannot reach an access log, whichever
// handler answers the request (SECURITY.md K52); the link page posts it.
func (m *methods) linkURL(token string) string {
	if token == "" || m.baseURL == nil {
		return ""
	}
	u := *m.baseURL
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/") + m.prefix + "/link#" + token
}

// linkTTL is the lifetime of the links of a method in link mode, and 0
// for a method that sends codes.
func (m *methods) linkTTL(method string) time.Duration {
	ch, _ := m.channel(method)
	return ch.linkTTL
}

// linkMethods are the configured methods in link mode.
func (m *methods) linkMethods() []string {
	var out []string
	for _, ch := range m.list {
		if ch.linkTTL > 0 {
			out = append(out, ch.method)
		}
	}
	return out
}

// checkLinkMode refuses link mode without base_url (SECURITY.md J43): the
// links in messages are built from it, and taking the request's Host
// instead would let anyone who can start a sign-in send a victim a link
// to a site of their choosing.
func (m *methods) checkLinkMode() error {
	if m.baseURL != nil {
		return nil
	}
	for _, ch := range m.list {
		if ch.linkTTL > 0 {
			return fmt.Errorf("%s: send link needs base_url, the site's external URL (e.g. https://app.example.com): the links in messages are built from it, never from the request's Host or X-Forwarded-* headers", ch.method)
		}
	}
	return nil
}

// issuer names the site in authenticator apps: the configured issuer,
// else the host of base_url. Never the request's Host (SECURITY.md C20).
func (m *methods) issuer() string {
	if m.totp.Issuer != "" {
		return m.totp.Issuer
	}
	if m.baseURL != nil {
		return m.baseURL.Hostname()
	}
	return ""
}

// registration returns the registration settings of a method, if on.
func (m *methods) registration(method string) *authenticators.Registration {
	ch, _ := m.channel(method)
	return ch.registration
}

// requiredFor are the methods that authorize registering for method: the
// configured ones, else totp, else the other message method.
func (m *methods) requiredFor(method string) []string {
	if reg := m.registration(method); reg != nil && len(reg.Require) > 0 {
		return reg.Require
	}
	if m.totp != nil {
		return []string{methodTOTP}
	}
	for _, ch := range m.list {
		if ch.method != method {
			return []string{ch.method}
		}
	}
	return nil
}

// validateRegistration refuses a registration that no other factor can
// authorize: it would let one factor replace the other.
func (m *methods) validateRegistration() error {
	for _, ch := range m.list {
		method := ch.method
		if ch.registration == nil {
			continue
		}
		req := m.requiredFor(method)
		if len(req) == 0 {
			return fmt.Errorf("%s registration needs another factor to authorize it (a totp block or the other message method)", method)
		}
		for _, need := range req {
			_, isChannel := m.channel(need)
			switch {
			case need == method:
				return fmt.Errorf("%s registration: require %s would let the factor being changed authorize its own change; require another factor", method, need)
			case need == methodTOTP && m.totp == nil, need != methodTOTP && !isChannel:
				return fmt.Errorf("%s registration: require %s, but %s is not configured", method, need, need)
			}
		}
	}
	return nil
}

// registerLinks are the "register" links shown during sign-in.
func (m *methods) registerLinks(ret string) map[string]string {
	var links map[string]string
	for kind, method := range registerKinds {
		if reg := m.registration(method); reg != nil && reg.DuringLogin {
			if links == nil {
				links = map[string]string{}
			}
			links[kind] = m.prefix + "/register/" + kind + "?return=" + url.QueryEscape(ret)
		}
	}
	return links
}

// checkNewAddress validates an address a user wants to register. It
// returns the address in canonical form, or what is wrong with it in
// words for the page.
func (m *methods) checkNewAddress(method, input string) (address, problem string) {
	ch, ok := m.channel(method)
	if !ok {
		return "", "Unknown method."
	}
	return ch.checkAddress(input)
}

// validateTOTP checks the totp block and how it fits the rest.
func (m *methods) validateTOTP(standalone bool, recoveryCodes int) error {
	if m.totp == nil {
		return nil
	}
	if err := m.totp.Validate(); err != nil {
		return err
	}
	if m.issuer() == "" {
		return fmt.Errorf("totp: set issuer or base_url: authenticator apps show it next to the code, and it is never taken from the request's Host")
	}
	if recoveryCodes < totp.MinRecoveryCodes || recoveryCodes > totp.MaxRecoveryCodes {
		return fmt.Errorf("recovery_codes: %d is outside %d..%d", recoveryCodes, totp.MinRecoveryCodes, totp.MaxRecoveryCodes)
	}
	switch {
	case m.totp.Enroll == totp.EnrollFirstLogin && standalone:
		return fmt.Errorf("totp: enroll first_login trusts the first factor, but user is empty (standalone), so there is none: anyone could enroll for any name. Use enroll verified with an email block, or configure a first factor")
	case m.totp.Enroll == totp.EnrollVerified && len(m.list) == 0:
		return fmt.Errorf("totp: enroll verified lets users add an app after passing another factor, but no email block is configured: add an email or sms block, or use enroll first_login or off")
	}
	return nil
}
