package redis

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeValue: any stored bytes decode without a panic, and whatever
// decodes encodes back to the same bytes (SECURITY.md J42).
func FuzzDecodeValue(f *testing.F) {
	f.Add(encodeValue([]byte("v"), time.Time{}))
	f.Add(encodeValue([]byte("challenge"), time.Unix(1_800_000_000, 123456789)))
	f.Add(encodeValue(encodeCounter(-5), time.Unix(-100, 0)))
	f.Add([]byte{})
	f.Add([]byte{formatExpiry, 1, 2})
	f.Add([]byte{7, 'x'})
	f.Fuzz(func(t *testing.T, stored []byte) {
		value, expiresAt, err := decodeValue(stored)
		if err != nil {
			return
		}
		// An expiry of Go's zero time means "none", which has its own
		// format; everything else round-trips.
		if again := encodeValue(value, expiresAt); !bytes.Equal(again, stored) && !expiresAt.IsZero() {
			t.Errorf("decode(%x) then encode = %x", stored, again)
		}
	})
}
