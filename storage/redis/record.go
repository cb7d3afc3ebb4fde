package redis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A stored value is a Redis string that starts with a one-byte format tag.
// The exact expiry (to the nanosecond) is kept in the value, so a record is
// dead from its ExpiresAt on by the node's clock; the key's Redis expiry
// (PXAT, rounded up to the millisecond) only lets the server drop it.
//
//	formatNoExpiry: tag | value
//	formatExpiry:   tag | seconds (int64, big-endian) | nanoseconds (uint32, big-endian) | value
//
// Counters are 8-byte big-endian int64 values, as in the Badger store.
const (
	formatNoExpiry byte = 1
	formatExpiry   byte = 2

	expiryHeaderLen = 1 + 8 + 4
	counterLen      = 8
)

// errCorrupt reports a stored value this package did not write.
var errCorrupt = errors.New("malformed stored value")

// header returns the format header for expiresAt.
func header(expiresAt time.Time) []byte {
	if expiresAt.IsZero() {
		return []byte{formatNoExpiry}
	}
	b := make([]byte, expiryHeaderLen)
	b[0] = formatExpiry
	binary.BigEndian.PutUint64(b[1:9], uint64(expiresAt.Unix()))
	binary.BigEndian.PutUint32(b[9:13], uint32(expiresAt.Nanosecond()))
	return b
}

// encodeValue returns the stored form of value with its expiry.
func encodeValue(value []byte, expiresAt time.Time) []byte {
	return append(header(expiresAt), value...)
}

// decodeValue parses a stored value. The returned value does not alias
// stored.
func decodeValue(stored []byte) (value []byte, expiresAt time.Time, err error) {
	if len(stored) == 0 {
		return nil, time.Time{}, errCorrupt
	}
	switch stored[0] {
	case formatNoExpiry:
		return append([]byte{}, stored[1:]...), time.Time{}, nil
	case formatExpiry:
		if len(stored) < expiryHeaderLen {
			return nil, time.Time{}, errCorrupt
		}
		sec := int64(binary.BigEndian.Uint64(stored[1:9]))
		nsec := int64(binary.BigEndian.Uint32(stored[9:13]))
		if nsec >= int64(time.Second) {
			return nil, time.Time{}, errCorrupt
		}
		return append([]byte{}, stored[expiryHeaderLen:]...), time.Unix(sec, nsec), nil
	default:
		return nil, time.Time{}, fmt.Errorf("%w: unknown format %d", errCorrupt, stored[0])
	}
}

// expired reports whether a record with expiresAt is dead at now.
func expired(expiresAt, now time.Time) bool {
	return !expiresAt.IsZero() && !now.Before(expiresAt)
}

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

// encodeCounter returns n as 8-byte big-endian two's complement.
func encodeCounter(n int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, counterLen), uint64(n))
}

func decodeCounter(b []byte) (int64, error) {
	if len(b) != counterLen {
		return 0, fmt.Errorf("%w: counter of %d bytes", errCorrupt, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}
