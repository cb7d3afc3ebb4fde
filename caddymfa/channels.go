package caddymfa

import (
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

// channel is a method that sends a code to an address on file: what sends
// it and under which limits.
type channel struct {
	method string
	sender authenticators.Sender
	limits authenticators.Limits
}

// phoneCountry is the region of an E.164 number, for the per-country cap.
func phoneCountry(number string) string {
	_, region, err := sms.ParseNumber(number)
	if err != nil {
		return ""
	}
	return region
}

// methods are the configured authenticators as the flow sees them: the
// message channels and their limits, link mode, registration, the
// issuer of authenticator apps. Provision builds it from the config; it
// holds no state.
type methods struct {
	email   *email.Config
	sms     *sms.Config
	totp    *totp.Config
	baseURL *url.URL
	prefix  string
}

// channel returns the configured message method of that name.
func (m *methods) channel(method string) (channel, bool) {
	switch {
	case method == methodEmail && m.email != nil:
		return channel{methodEmail, m.email, m.email.Limits}, true
	case method == methodSMS && m.sms != nil:
		return channel{methodSMS, m.sms, m.sms.Limits}, true
	}
	return channel{}, false
}

// channels are the configured message methods, email first.
func (m *methods) channels() []channel {
	var out []channel
	for _, name := range []string{methodEmail, methodSMS} {
		if ch, ok := m.channel(name); ok {
			out = append(out, ch)
		}
	}
	return out
}

// limitsFor returns the limits of a message method (zero for others).
func (m *methods) limitsFor(method string) authenticators.Limits {
	ch, _ := m.channel(method)
	return ch.limits
}

// severalMethods reports whether a user may have more than one method, so
// the one used last is worth remembering.
func (m *methods) severalMethods() bool {
	return m.totp != nil || len(m.channels()) > 1
}

// registrationOn reports whether users may register an address.
func (m *methods) registrationOn() bool {
	return m.sms != nil && m.sms.Registration != nil || m.email != nil && m.email.Registration != nil
}

// linkURL is the link a message carries: base_url, path_prefix, /link and
// the token; never built from the request's Host or X-Forwarded-* (link
// mode needs base_url). "" for no token.
func (m *methods) linkURL(token string) string {
	if token == "" || m.baseURL == nil {
		return ""
	}
	u := *m.baseURL
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/") + m.prefix + "/link?token=" + token
}

// linkTTL is the lifetime of the links of a method in link mode, and 0
// for a method that sends codes.
func (m *methods) linkTTL(method string) time.Duration {
	var ttl, def time.Duration
	switch {
	case method == methodEmail && m.email != nil && m.email.Send == email.SendLink:
		ttl, def = time.Duration(m.email.LinkTTL), email.DefaultLinkTTL
	case method == methodSMS && m.sms != nil && m.sms.Send == sms.SendLink:
		ttl, def = time.Duration(m.sms.LinkTTL), sms.DefaultLinkTTL
	default:
		return 0
	}
	if ttl <= 0 {
		return def
	}
	return ttl
}

// linkMethods are the configured methods in link mode.
func (m *methods) linkMethods() []string {
	var out []string
	for _, ch := range m.channels() {
		if m.linkTTL(ch.method) > 0 {
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
	var method string
	switch {
	case m.baseURL != nil:
		return nil
	case m.email != nil && m.email.Send == email.SendLink:
		method = methodEmail
	case m.sms != nil && m.sms.Send == sms.SendLink:
		method = methodSMS
	default:
		return nil
	}
	return fmt.Errorf("%s: send link needs base_url, the site's external URL (e.g. https://app.example.com): the links in messages are built from it, never from the request's Host or X-Forwarded-* headers", method)
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
	switch {
	case method == methodSMS && m.sms != nil:
		return m.sms.Registration
	case method == methodEmail && m.email != nil:
		return m.email.Registration
	}
	return nil
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
	for _, ch := range m.channels() {
		if ch.method != method {
			return []string{ch.method}
		}
	}
	return nil
}

// validateRegistration refuses a registration that no other factor can
// authorize: it would let one factor replace the other.
func (m *methods) validateRegistration() error {
	for _, method := range []string{methodSMS, methodEmail} {
		if m.registration(method) == nil {
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
	switch method {
	case methodSMS:
		number, _, err := m.sms.CheckNumber(input)
		if errors.Is(err, sms.ErrCountryNotAllowed) {
			return "", "Codes cannot be sent to numbers in that country."
		}
		if err != nil {
			return "", "Enter the number in international form, starting with + and the country code."
		}
		return number, ""
	case methodEmail:
		addr, err := email.ParseAddress(input)
		if err != nil {
			return "", "Enter a valid email address."
		}
		return addr, ""
	}
	return "", "Unknown method."
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
	case m.totp.Enroll == totp.EnrollVerified && m.email == nil && m.sms == nil:
		return fmt.Errorf("totp: enroll verified lets users add an app after passing another factor, but no email block is configured: add an email or sms block, or use enroll first_login or off")
	}
	return nil
}
