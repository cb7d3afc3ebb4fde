package caddymfa

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"
)

// Stored records in binary.
//
// The records a sign-in reads and writes (challenge, session, lockout,
// user, delivery log entry, live code) are stored in a compact binary form: a format byte that names the
// record's type and the version of its layout, then its fields in a fixed
// order. A string or byte slice is a uvarint length and its bytes; an
// integer a varint; a bool one byte (0 or 1); a time its Unix seconds
// (varint) and nanoseconds (uvarint); a list or map a uvarint count and
// its elements. Encoding is appending to one buffer; decoding copies the
// record into one string once and slices its strings from it, where
// encoding/json built a decoder and a value per field.
//
// A record whose first byte is not the format byte of its type is read
// as JSON, the form of earlier versions (they start with '{'), so records
// written before an upgrade are read as before. A new layout of a record
// gets a new format byte, and the decoder keeps reading the old one.
const (
	formatChallenge byte = 0x01
	formatSession   byte = 0x02
	formatLock      byte = 0x03
	formatUser      byte = 0x04
	formatLogEntry  byte = 0x05
	formatLiveFlow  byte = 0x06
)

// binaryRecord is a record with a binary stored form. recordFormat is its
// format byte; appendRecord appends its fields and readRecord reads them
// back, in the same order.
type binaryRecord interface {
	recordFormat() byte
	appendRecord(b []byte) []byte
	readRecord(d *binReader)
}

// decodeRecord reads a stored record of type T: its binary form when T has
// one and the record starts with its format byte, JSON otherwise.
func decodeRecord[T any](data []byte) (T, error) {
	var v T
	if len(data) > maxRecord {
		return v, errBadRecord
	}
	if r, ok := any(&v).(binaryRecord); ok && len(data) > 0 && data[0] == r.recordFormat() {
		s := string(data[1:])
		d := binReader{rest: s, all: s}
		r.readRecord(&d)
		if d.bad || d.rest != "" {
			var zero T
			return zero, errBadRecord
		}
		return v, nil
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return v, fmt.Errorf("%w: %v", errBadRecord, err)
	}
	return v, nil
}

// encodeRecord returns the stored form of v: binary when its type has one,
// JSON otherwise.
func encodeRecord[T any](v T) ([]byte, error) {
	if r, ok := any(&v).(binaryRecord); ok {
		return r.appendRecord(append(make([]byte, 0, 256), r.recordFormat())), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encoding record: %w", err)
	}
	return b, nil
}

// appendString appends s as a uvarint length and its bytes.
func appendString[S ~string | ~[]byte](b []byte, s S) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendInt(b []byte, n int64) []byte { return binary.AppendVarint(b, n) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// appendTime appends t's instant; its location and monotonic reading are
// not kept (nor were they in JSON).
func appendTime(b []byte, t time.Time) []byte {
	return binary.AppendUvarint(binary.AppendVarint(b, t.Unix()), uint64(t.Nanosecond()))
}

func appendStrings[S ~string | ~[]byte](b []byte, ss []S) []byte {
	b = binary.AppendUvarint(b, uint64(len(ss)))
	for _, s := range ss {
		b = appendString(b, s)
	}
	return b
}

// binReader reads the fields of a binary record or cookie payload; bad
// records that one did not parse, and every read after that returns a
// zero value.
type binReader struct {
	rest string
	bad  bool
	// all is the whole input, when set, and raw a copy of it made by the
	// first read of a byte slice: the byte slices of a record share it,
	// as its strings share all.
	all string
	raw []byte
}

func (d *binReader) uvarint() uint64 { return readNumber(d, binary.Uvarint) }
func (d *binReader) varint() int64   { return readNumber(d, binary.Varint) }

func readNumber[T int64 | uint64](d *binReader, read func([]byte) (T, int)) T {
	if d.bad {
		return 0
	}
	var buf [binary.MaxVarintLen64]byte
	n := copy(buf[:], d.rest)
	v, k := read(buf[:n])
	if k <= 0 {
		d.bad = true
		return 0
	}
	d.rest = d.rest[k:]
	return v
}

func (d *binReader) int() int { return int(d.varint()) }

func (d *binReader) string() string {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.rest)) {
		d.bad = true
		return ""
	}
	s := d.rest[:n]
	d.rest = d.rest[n:]
	return s
}

// bytes reads a byte slice; an empty one is nil.
func (d *binReader) bytes() []byte {
	s := d.string()
	if s == "" {
		return nil
	}
	end := len(d.all) - len(d.rest)
	if end < len(s) || d.all[end-len(s):end] != s {
		return []byte(s) // no all, or rest is not its tail
	}
	if d.raw == nil {
		d.raw = []byte(d.all)
	}
	return d.raw[end-len(s) : end : end]
}

func (d *binReader) bool() bool {
	if d.bad || d.rest == "" || d.rest[0] > 1 {
		d.bad = true
		return false
	}
	v := d.rest[0] == 1
	d.rest = d.rest[1:]
	return v
}

// time reads a time written by appendTime, in UTC.
func (d *binReader) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if d.bad || nsec >= uint64(time.Second) {
		d.bad = true
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec)).UTC()
}

// count reads the length of a list or map: every element takes at least
// one byte, so a count larger than the bytes left is malformed (and
// allocates nothing).
func (d *binReader) count() int {
	n := d.uvarint()
	if d.bad || n > uint64(len(d.rest)) {
		d.bad = true
		return 0
	}
	return int(n)
}

// strings reads a list of strings; an empty one is nil.
func (d *binReader) strings() []string {
	n := d.count()
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.string()
	}
	return ss
}

// appendTimes appends a map of times, its keys in order, so a record
// encodes to the same bytes every time.
func appendTimes(b []byte, m map[string]time.Time) []byte {
	b = binary.AppendUvarint(b, uint64(len(m)))
	keys := make([]string, 0, 8)
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		b = appendTime(appendString(b, k), m[k])
	}
	return b
}

// times reads a map written by appendTimes; an empty one is nil.
func (d *binReader) times() map[string]time.Time {
	n := d.count()
	if n == 0 {
		return nil
	}
	m := make(map[string]time.Time, n)
	for range n {
		k := d.string()
		m[k] = d.time()
	}
	return m
}

func (d *binReader) uint32() uint32 {
	n := d.uvarint()
	if n > math.MaxUint32 {
		d.bad = true
		return 0
	}
	return uint32(n)
}
