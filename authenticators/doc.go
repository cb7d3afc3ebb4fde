// Package authenticators holds what every one-time-code channel shares: the
// message a channel delivers, the Sender interface the handler calls, the
// per-method limits (code length, lifetime, attempts, sends, throttles) and
// the generation and normalisation of codes.
//
// Channels (authenticators/email, later SMS) know nothing about HTTP
// routing or the store; the handler (package caddymfa) decides who gets a
// code and when, and asks a Sender to deliver it.
package authenticators
