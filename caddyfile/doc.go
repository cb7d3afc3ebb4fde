// Package caddyfile registers the Caddyfile directive mfa and turns its
// block into the JSON configuration of the http.handlers.mfa module.
//
// The directive is ordered after forward_auth (and so after basic_auth), so
// the first factor has already set {http.auth.user.id} when the handler
// runs. Values are taken as written: placeholders such as
// {env.MFA_SECRET_KEY} or {http.auth.user.id} are resolved by the handler at
// provision or request time, and range checks (code length, attempts, code
// lifetime) happen at provision, so the JSON and the Caddyfile refuse the
// same configurations. The parser rejects only what it can see on its own:
// unknown subdirectives (suggesting the nearest known one, "did you
// mean"), repeated ones, wrong argument counts, values that are
// not numbers or durations, and, for totp and recovery_codes, values outside
// the fixed choices and ranges of the authenticator. There "skew 0" is
// written as -1, because a zero skew in JSON takes the default.
//
// Likewise policy must be one of its four names and trusted_networks a list
// of CIDRs, addresses or private_ranges, parsed as the handler parses them;
// trusted_networks may be repeated, each line adding to the list, as with
// trusted_proxies static. Whether the policy fits the rest (new_country
// needs a readable geoip_db; the standalone flow, user "", takes neither a
// policy other than always, nor trusted_networks, nor remember_device) is
// checked when the handler is provisioned. "remember_device off" is the
// default, and is left out of the JSON.
//
// Storage backends are guest modules; their tokens are handed to the
// module's own Caddyfile unmarshaler, so a third-party module in the
// mfa.storage namespace is configured the same way as the built-in ones.
//
// The email, sms and totp blocks are not parsed here: each block's tokens,
// from its name to the closing brace, go to the UnmarshalCaddyfile method
// of the configuration it fills (email.Config, sms.Config, totp.Config),
// which keeps the grammar next to its fields, as Caddy's encode directive
// hands its encoders' blocks to their modules. email.Config hands "smtp",
// "outbox" and "transport <name> ..." on to the transport module, and
// sms.Config "provider <name> ..." to the provider module, so third-party
// modules in mfa.email_transports and mfa.sms_providers are configured the
// same way as the built-in ones. Their errors name the line, like the ones
// raised here. The sms block checks a little more while parsing (the
// code_length range, message texts and languages, country codes) and
// leaves the rest, a missing provider or sender, credentials and the upper
// limits, to provision.
package caddyfile
