// Package mfa registers every caddy-mfa module with Caddy: the
// http.handlers.mfa handler, its mfa Caddyfile directive, the Badger and
// Redis stores, the email authenticator with its transports, the SMS authenticator with
// its providers, and the admin API with the "caddy mfa" command. Import it for its side
// effects, or build Caddy with
//
//	xcaddy build --with github.com/caddymfa/caddy-mfa
package mfa

import (
	// plugging in the modules
	_ "github.com/caddymfa/caddy-mfa/authenticators/email"
	_ "github.com/caddymfa/caddy-mfa/authenticators/sms"
	_ "github.com/caddymfa/caddy-mfa/caddyfile"
	_ "github.com/caddymfa/caddy-mfa/caddymfa"
	_ "github.com/caddymfa/caddy-mfa/storage/badger"
	_ "github.com/caddymfa/caddy-mfa/storage/redis"
)
