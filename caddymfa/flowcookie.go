package caddymfa

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"slices"
)

// The flow cookie's payload (flowState) is binary: a format byte, then
// ID, Realm, Issued, FirstFactor, User, Return, Next and StepUp, each
// string a uvarint length and its bytes, Issued a varint, StepUp a
// uvarint count and its strings. A sign-in reads it on every request;
// decoding it is slicing one string where encoding/json made a decoder
// and a string per field. A payload that starts with '{' is the JSON of
// earlier versions, still read, so a flow begun before an upgrade goes
// on after it.
const flowFormat byte = 1

// maxStepUp bounds the methods a flow cookie may name.
const maxStepUp = 16

var errBadFlow = errors.New("malformed flow cookie")

// encodeFlow is the payload of f's cookie.
func encodeFlow(f *flowState) string {
	return string(appendFlow(nil, f))
}

// appendFlow appends the payload of f's cookie to b. The flow cookie is
// signed straight from it (flows.cookie), in a buffer on the stack.
func appendFlow(b []byte, f *flowState) []byte {
	n := 1 + binary.MaxVarintLen64 + binary.MaxVarintLen64*(7+len(f.StepUp)) +
		len(f.ID) + len(f.Realm) + len(f.FirstFactor) + len(f.User) + len(f.Return) + len(f.Next)
	for _, m := range f.StepUp {
		n += len(m)
	}
	b = slices.Grow(b, n)
	b = append(b, flowFormat)
	b = appendString(b, f.ID)
	b = appendString(b, f.Realm)
	b = binary.AppendVarint(b, f.Issued)
	b = appendString(b, f.FirstFactor)
	b = appendString(b, f.User)
	b = appendString(b, f.Return)
	b = appendString(b, f.Next)
	b = appendStrings(b, f.StepUp)
	return b
}

// decodeFlow parses a payload made by encodeFlow, or the JSON of earlier
// versions. The strings of the result are substrings of p.
func decodeFlow(p string) (flowState, error) {
	var f flowState
	if p == "" {
		return f, errBadFlow
	}
	if p[0] == '{' {
		// Into a flowState of its own: handing f to encoding/json, as an
		// interface, would put every flow read on the heap.
		g := new(flowState)
		err := json.Unmarshal([]byte(p), g)
		return *g, err
	}
	if p[0] != flowFormat {
		return f, errBadFlow
	}
	d := binReader{rest: p[1:]}
	f.ID = d.string()
	f.Realm = d.string()
	f.Issued = d.varint()
	f.FirstFactor = d.string()
	f.User = d.string()
	f.Return = d.string()
	f.Next = d.string()
	f.StepUp = d.strings()
	if d.bad || len(f.StepUp) > maxStepUp || d.rest != "" {
		return flowState{}, errBadFlow
	}
	return f, nil
}
