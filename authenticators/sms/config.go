package sms

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// Config configures the SMS authenticator: which provider sends the texts,
// what they say, which countries may receive them, and the limits of the
// Curity SMS OTP seed. It is not a module itself; the mfa handler embeds it
// and calls Provision, Validate and Cleanup.
type Config struct {
	// ProviderRaw is the provider that sends the texts: "twilio",
	// "webhook", "outbox" (development: writes files) or a third-party
	// module in the mfa.sms_providers namespace. Required.
	ProviderRaw json.RawMessage `json:"provider,omitempty" caddy:"namespace=mfa.sms_providers inline_key=provider"`

	// Message is the text of a code message; "%s" marks where the code
	// goes and must occur exactly once, "%%" is a literal '%'. Default:
	// "%s", the code alone, as in the Curity SMS OTP seed.
	Message string `json:"message,omitempty"`

	// Messages are localized texts keyed by BCP 47 language tag, e.g.
	// {"sv": "Din kod är %s"}, with the same rules as Message. The text
	// whose language best matches the user's preference (see WithLanguage)
	// is sent; Message answers when none matches. Default: none.
	Messages map[string]string `json:"messages,omitempty"`

	// Send is what the message carries: "code" (default), a one-time code
	// to type in, or "link", a single-use link to open and confirm (the
	// Curity SMS seed's hyperlink mode, for smartphones). Link mode needs
	// the handler's base_url, from which the links are built. In link mode
	// a text carries no code: a webhook body must use {message}, since
	// {code} is empty.
	Send string `json:"send,omitempty"`

	// LinkTTL is how long a link stays valid in link mode. Default: 5m
	// (a text is read at once, and opening the link and confirming takes
	// longer than typing a code); at most 1h.
	LinkTTL caddy.Duration `json:"link_ttl,omitempty"`

	// LinkMessage is the text of a link message; "%s" marks where the
	// link goes, with the rules of Message. Default: "Tap to sign in: %s".
	LinkMessage string `json:"link_message,omitempty"`

	// LinkMessages are localized link texts keyed by BCP 47 language tag,
	// chosen as Messages are. Default: none.
	LinkMessages map[string]string `json:"link_messages,omitempty"`

	// Limits: code_length (default 6), code_ttl (default 1m, at most 10m),
	// max_attempts (default 3), max_sends (default 3) and throttle
	// (per_hour 50, per_5m 10, per_ip_per_hour 10, per_user_per_hour 5,
	// per_destination_per_hour 5, cooldown 30s; a negative value turns a
	// cap off). Texts cost money per message, so the global caps are
	// lower than email's.
	authenticators.Limits

	// AllowedCountries lists the ISO 3166-1 alpha-2 codes of the countries
	// whose numbers may receive texts, e.g. ["US", "CA", "GB", "SE"]. A
	// number elsewhere is refused when registered and when a text would be
	// sent. Default: empty, every country. Listing the countries of your
	// users is the strongest defense against SMS pumping (toll fraud).
	AllowedCountries []string `json:"allowed_countries,omitempty"`

	// PerCountryPerHour caps the texts sent to the numbers of any one
	// country per hour, against SMS pumping: fraudsters trigger codes to
	// ranges they profit from, usually in one or a few countries, so a cap
	// per destination country bounds the loss where the per-destination
	// and per-IP caps do not (every number and IP is new). Deliver does
	// not count it: like the throttle caps, it is enforced by the mfa
	// handler, which decides whether a text is sent. Default: 20; a
	// negative value turns it off. Raise it with throttle per_hour when
	// most users are in one country.
	PerCountryPerHour int `json:"per_country_per_hour,omitempty"`

	// Delivery tunes the asynchronous delivery queue.
	Delivery *delivery.Config `json:"delivery,omitempty"`

	// Registration lets users add or change their phone number, confirmed
	// by a code to the new number, after passing another factor. Off when
	// absent.
	Registration *authenticators.Registration `json:"registration,omitempty"`

	provider Provider
	msgs     *messages
	linkMsgs *messages
	allowed  []string               // AllowedCountries in upper case
	ch       delivery.Channel[Text] // queue, reports, log; tests set its Logger and Backoff
}
