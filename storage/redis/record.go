package redis

import (
	"time"

	"github.com/caddymfa/caddy-mfa/storage/internal/record"
)

// A stored value is a Redis string in storage/internal/record's form,
// shared with the other backends: a format tag, the exact expiry (to the
// nanosecond, by the node's clock), then the value; the key's Redis expiry
// (PXAT, rounded up to the millisecond) only lets the server drop it.
// Counters are 8-byte big-endian int64 values, as in the Badger store.
const formatExpiry = record.FormatExpiry

var (
	errCorrupt    = record.ErrCorrupt
	header        = record.Header
	encodeValue   = record.Encode
	decodeValue   = record.Decode
	expired       = record.Expired
	encodeCounter = record.EncodeCounter
	decodeCounter = record.DecodeCounter
)

// pxat returns the Redis expiry for expiresAt: Unix milliseconds rounded
// up, so the server never drops a record before its time (0: never). An
// expiry at or before the epoch becomes 1, which is already past: Redis
// refuses 0 and below.
func pxat(expiresAt time.Time) int64 {
	if expiresAt.IsZero() {
		return 0
	}
	ms := expiresAt.UnixMilli()
	if expiresAt.Sub(time.UnixMilli(ms)) > 0 {
		ms++
	}
	return max(ms, 1)
}
