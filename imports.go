// Package mfa registers every caddy-mfa module with Caddy: the
// http.handlers.mfa handler, its mfa Caddyfile directive, the Badger store
// and the email authenticator with its transports. Import it for its side
// effects, or build Caddy with
//
//	xcaddy build --with github.com/caddymfa/caddy-mfa
package mfa

import (
	// plugging in the modules
	_ "github.com/caddymfa/caddy-mfa/authenticators/email"
	_ "github.com/caddymfa/caddy-mfa/caddyfile"
	_ "github.com/caddymfa/caddy-mfa/caddymfa"
	_ "github.com/caddymfa/caddy-mfa/storage/badger"
)
