// Package smtptest runs a real SMTP server in the test process, for tests
// that send mail: github.com/emersion/go-smtp on 127.0.0.1 with a
// self-signed certificate, STARTTLS on the plain listener, a second
// listener with implicit TLS, AUTH PLAIN (only over TLS) and recording of
// every message exactly as it arrived. It can be told to reject
// transactions with 4xx or 5xx replies (Reject, or RejectRecipient for one
// address) or to stop answering at a given command (Hold, with WaitHeld to
// know a client is held); Hang and ClosedAddr give a server that never
// answers at all and a port where nothing listens.
//
// Messages go through the real protocol, so tests see what a relay would
// see: the envelope recipients, the raw headers and the encoded body.
package smtptest
