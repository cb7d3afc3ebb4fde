// Package authenticators holds what every one-time-code channel shares: the
// message a channel delivers, the Sender interface the handler calls, the
// security notices of the Notifier interface, the per-method limits (code
// length, lifetime, attempts, sends, throttles) with their shared defaults
// and checks, registration of a user's own address, and the generation and
// normalisation of codes and the check of links.
//
// The channels live in sub-packages: authenticators/email (SMTP and outbox
// transports, templates) and authenticators/sms (Twilio, webhook and outbox
// providers, E.164 numbers, texts per language) keep only what differs
// between them; authenticators/delivery is the plumbing they share (the
// delivery queue and its configuration, the report and log of every
// attempt, the outbox directory, the Caddyfile reader of the shared
// settings). authenticators/totp is the authenticator-app factor, which
// sends nothing.
//
// Channels know nothing about HTTP routing or the store; the handler
// (package caddymfa) decides who gets a code and when, and asks a Sender to
// deliver it.
package authenticators
