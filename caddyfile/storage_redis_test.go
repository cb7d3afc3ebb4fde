package caddyfile

// The Redis store is registered by the plugin's root package; the golden
// files storage_redis*.caddyfiletest need it here too.
import _ "github.com/caddymfa/caddy-mfa/storage/redis"
