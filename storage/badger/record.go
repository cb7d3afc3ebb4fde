package badger

import (
	"time"

	"github.com/caddymfa/caddy-mfa/storage/internal/record"
)

// The stored form of values and counters is storage/internal/record's,
// shared with the other backends.
var (
	encodeValue   = record.Encode
	decodeValue   = record.Decode
	expired       = record.Expired
	encodeCounter = record.EncodeCounter
	decodeCounter = record.DecodeCounter
)

// badgerExpiry converts an expiry to Badger's entry TTL: Unix seconds,
// rounded up so Badger never drops a record before its time (0: never).
// An expiry at or before the epoch becomes 1, which is already past.
func badgerExpiry(expiresAt time.Time) uint64 {
	if expiresAt.IsZero() {
		return 0
	}
	sec := expiresAt.Unix()
	if expiresAt.Nanosecond() > 0 {
		sec++
	}
	if sec < 1 {
		return 1
	}
	return uint64(sec)
}
