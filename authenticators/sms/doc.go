// Package sms is the SMS one-time-code and sign-in link authenticator:
// the Config the mfa handler embeds (provider, message texts per
// language, allowed countries, limits, delivery tuning), the Sender that
// validates numbers, renders texts and queues them, and the providers that
// carry them, as Caddy guest modules in the mfa.sms_providers namespace:
// "twilio" (Twilio's Messages REST API over plain net/http), "webhook"
// (any HTTP gateway, with a JSON or form body template) and "outbox"
// (development: one file per text).
//
// # Providers
//
// A provider is any module in mfa.sms_providers that implements Provider:
// Send makes one attempt to send one Text. A third-party plugin adds a
// gateway by registering such a module, optionally with a Caddyfile
// unmarshaler for "provider <name> ..."; nothing here changes. Errors
// decide retries: a *StatusError with a 4xx status other than 408 and 429,
// or an error wrapped with Permanent, is final; anything else (5xx, 429,
// timeouts, connection failures) is retried with backoff by the delivery
// queue (package authenticators/delivery), and the request waits only a
// bounded time.
//
// # Numbers
//
// Destinations are E.164 numbers. ParseNumber validates them with
// github.com/nyaruka/phonenumbers, the Go port of Google's libphonenumber:
// its metadata knows, per country, which calling codes, lengths and
// prefixes are assigned and which ranges are premium rate, which a
// hand-written check cannot keep up with, and it maps a number to its
// country for allowed_countries and the per-country cap against SMS
// pumping. The metadata is compiled into the binary and decoded when the
// package initializes, which costs about 2.5 MB of heap. Numbers are
// masked in pages and logs ("+1*******67"), and codes are never logged or
// reported.
//
// # Messages
//
// A message text has "%s" where the code goes, and may be localized per
// language (Config.Messages); WithLanguage passes the user's preference to
// Deliver. In link mode (send link) the text is
// a link text instead (Config.LinkMessage, Config.LinkMessages), with "%s"
// where the single-use link goes; the link's token is masked wherever a
// code would be. Config also implements authenticators.Notifier: Notify sends a
// short built-in security notice when a user's factors change.
package sms
