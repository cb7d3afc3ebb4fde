package badger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// A stored value starts with a one-byte format tag. Badger keeps entry
// expiry in whole Unix seconds; the exact expiry is kept in the value so
// a record is dead from its ExpiresAt on, not up to a second later.
//
//	formatNoExpiry: tag | value
//	formatExpiry:   tag | seconds (int64, big-endian) | nanoseconds (uint32, big-endian) | value
const (
	formatNoExpiry byte = 1
	formatExpiry   byte = 2

	expiryHeaderLen = 1 + 8 + 4
)

// errCorrupt reports a stored value this package did not write.
var errCorrupt = errors.New("malformed stored value")

// encodeValue returns the stored form of value with its expiry.
func encodeValue(value []byte, expiresAt time.Time) []byte {
	if expiresAt.IsZero() {
		b := make([]byte, 1+len(value))
		b[0] = formatNoExpiry
		copy(b[1:], value)
		return b
	}
	b := make([]byte, expiryHeaderLen+len(value))
	b[0] = formatExpiry
	binary.BigEndian.PutUint64(b[1:9], uint64(expiresAt.Unix()))
	binary.BigEndian.PutUint32(b[9:13], uint32(expiresAt.Nanosecond()))
	copy(b[expiryHeaderLen:], value)
	return b
}

// decodeValue parses a stored value. The returned value is a copy, safe
// to keep after the Badger transaction ends.
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

// expired reports whether a record with expiresAt is dead at now.
func expired(expiresAt, now time.Time) bool {
	return !expiresAt.IsZero() && !now.Before(expiresAt)
}

// Counters are stored as 8-byte big-endian int64 values.
const counterLen = 8

func encodeCounter(n int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, counterLen), uint64(n))
}

func decodeCounter(b []byte) (int64, error) {
	if len(b) != counterLen {
		return 0, fmt.Errorf("%w: counter of %d bytes", errCorrupt, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}
