// Package integration holds end-to-end tests of caddy-mfa: a real Caddy
// running in-process (through caddytest) with the mfa directive, a real
// SMTP server (internal/smtptest) with STARTTLS, implicit TLS and AUTH, an
// upstream behind reverse_proxy that echoes what it receives, and the
// Badger store in a temporary directory. Caddy listens on fixed ports
// (admin 2999, HTTP 9080), so the tests of this package never run in
// parallel with each other.
//
// The tests named TestTwoNodes... run several Caddy nodes instead: real
// "caddy run" processes built once per test binary from ./cmd/caddy, on
// free ports, sharing one Redis (internal/redistest) and the SMTP server
// (nodes_test.go holds the plumbing). They need redis-server (and
// redis-sentinel); without it they are skipped, or fail on CI.
package integration
