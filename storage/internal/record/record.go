// Package record is the stored form of a value that the store backends
// share: a one-byte format tag, the exact expiry, then the value; and
// counters as 8-byte big-endian integers. One format for every backend is
// what lets storage.Copy move records between them byte for byte.
//
// The exact expiry (to the nanosecond) is kept in the value, so a record is
// dead from its ExpiresAt on, whatever the precision of the backend's own
// expiry (Badger keeps whole seconds, Redis milliseconds), which then only
// lets the backend drop it.
//
//	FormatNoExpiry: tag | value
//	FormatExpiry:   tag | seconds (int64, big-endian) | nanoseconds (uint32, big-endian) | value
package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Format tags and lengths.
const (
	FormatNoExpiry byte = 1
	FormatExpiry   byte = 2

	ExpiryHeaderLen = 1 + 8 + 4
	CounterLen      = 8
)

// ErrCorrupt reports a stored value this format did not write.
var ErrCorrupt = errors.New("malformed stored value")

// Header returns the format header for expiresAt.
func Header(expiresAt time.Time) []byte {
	if expiresAt.IsZero() {
		return []byte{FormatNoExpiry}
	}
	b := make([]byte, ExpiryHeaderLen)
	b[0] = FormatExpiry
	binary.BigEndian.PutUint64(b[1:9], uint64(expiresAt.Unix()))
	binary.BigEndian.PutUint32(b[9:13], uint32(expiresAt.Nanosecond()))
	return b
}

// Encode returns the stored form of value with its expiry.
func Encode(value []byte, expiresAt time.Time) []byte {
	h := Header(expiresAt)
	return append(append(make([]byte, 0, len(h)+len(value)), h...), value...)
}

// Decode parses a stored value. The returned value is a copy: it does not
// alias stored, so it is safe to keep after a transaction ends.
func Decode(stored []byte) (value []byte, expiresAt time.Time, err error) {
	if len(stored) == 0 {
		return nil, time.Time{}, ErrCorrupt
	}
	switch stored[0] {
	case FormatNoExpiry:
		return append([]byte{}, stored[1:]...), time.Time{}, nil
	case FormatExpiry:
		if len(stored) < ExpiryHeaderLen {
			return nil, time.Time{}, ErrCorrupt
		}
		sec := int64(binary.BigEndian.Uint64(stored[1:9]))
		nsec := int64(binary.BigEndian.Uint32(stored[9:13]))
		if nsec >= int64(time.Second) {
			return nil, time.Time{}, ErrCorrupt
		}
		return append([]byte{}, stored[ExpiryHeaderLen:]...), time.Unix(sec, nsec), nil
	default:
		return nil, time.Time{}, fmt.Errorf("%w: unknown format %d", ErrCorrupt, stored[0])
	}
}

// Expired reports whether a record with expiresAt is dead at now.
func Expired(expiresAt, now time.Time) bool {
	return !expiresAt.IsZero() && !now.Before(expiresAt)
}

// EncodeCounter returns n as 8-byte big-endian two's complement.
func EncodeCounter(n int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, CounterLen), uint64(n))
}

// DecodeCounter reads a counter written by EncodeCounter.
func DecodeCounter(b []byte) (int64, error) {
	if len(b) != CounterLen {
		return 0, fmt.Errorf("%w: counter of %d bytes", ErrCorrupt, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}
