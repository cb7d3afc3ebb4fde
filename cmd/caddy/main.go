// Command caddy is Caddy's standard command with caddy-mfa plugged in, for
// local development and tests:
//
//	go run ./cmd/caddy run --config examples/quickstart/Caddyfile
//
// Release builds use xcaddy instead; see xcaddy.md.
package main

import (
	_ "time/tzdata"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// plug in Caddy modules here
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddymfa/caddy-mfa"
)

func main() {
	caddycmd.Main()
}
