package caddymfa

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestFlowCookieRoundTrip: every field of a flow survives its cookie, and
// a cookie of the JSON form earlier versions wrote still reads the same.
func TestFlowCookieRoundTrip(t *testing.T) {
	flows := []flowState{
		{ID: "abc", Realm: "app", Issued: 1700000000},
		{ID: strings.Repeat("x", 43), Realm: "r", Issued: -5, FirstFactor: "Alice Ünicode", User: "u@example.com",
			Return: "/a?b=c&d=%2F", Next: "register/phone", StepUp: []string{"totp", "recovery"}},
		{ID: "id", Realm: "", Issued: 0, User: strings.Repeat("é", 300)},
	}
	for _, f := range flows {
		got, err := decodeFlow(encodeFlow(&f))
		if err != nil || !reflect.DeepEqual(got, f) {
			t.Errorf("binary: %+v: got %+v, %v", f, got, err)
		}
		j, _ := json.Marshal(f)
		got, err = decodeFlow(string(j))
		if err != nil || !reflect.DeepEqual(got, f) {
			t.Errorf("JSON: %s: got %+v, %v", j, got, err)
		}
	}
	if raceEnabled {
		return
	}
	// The binary form is read by slicing: its strings are substrings of
	// the payload, and a flow without step-up methods costs nothing.
	p := encodeFlow(&flows[0])
	if n := testing.AllocsPerRun(100, func() { _, _ = decodeFlow(p) }); n != 0 {
		t.Errorf("decoding a flow allocates %v times, want 0", n)
	}
}

// FuzzDecodeFlow: no payload makes decodeFlow panic, and what it accepts
// in the binary form encodes to a payload that decodes to the same flow
// (SECURITY.md J42).
func FuzzDecodeFlow(f *testing.F) {
	f.Add(encodeFlow(&flowState{ID: "abc", Realm: "app", Issued: 1700000000, StepUp: []string{"totp"}}))
	f.Add(encodeFlow(&flowState{ID: "x", FirstFactor: "alice", Return: "/", Next: "register/email"}))
	f.Add(`{"id":"x","rl":"app","t":1}`)
	f.Add("\x01\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff")
	f.Add("")
	f.Fuzz(func(t *testing.T, p string) {
		fl, err := decodeFlow(p)
		if err != nil || p == "" || p[0] == '{' {
			return
		}
		if again, err := decodeFlow(encodeFlow(&fl)); err != nil || !reflect.DeepEqual(again, fl) {
			t.Fatalf("payload %q decodes to %+v, which encodes to one that decodes to %+v, %v", p, fl, again, err)
		}
	})
}
