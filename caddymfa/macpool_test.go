package caddymfa

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
	"sync"
	"testing"
)

// mac is the plain HMAC-SHA256 of parts joined by NUL, the reference the
// pooled states must match.
func mac(key []byte, parts ...string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(strings.Join(parts, "\x00")))
	return m.Sum(nil)
}

// Pooled HMAC states give the same sums as fresh ones, from many
// goroutines at once, for short and long messages.
func TestMACPoolMatchesHMAC(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	p := newMACPool(key)
	inputs := [][]string{{""}, {"a"}, {"chal", "123456"}, {"link", "c", "t"}, {strings.Repeat("x", 5000)}, {"a\x00b"}, {"a", "", "b"}}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				parts := inputs[(g+i)%len(inputs)]
				if got, want := p.sum(nil, parts...), mac(key, parts...); !bytes.Equal(got, want) {
					t.Errorf("sum(%q) = %x, want %x", parts, got, want)
					return
				}
			}
		})
	}
	wg.Wait()
	// The result is appended to dst.
	if got := p.sum([]byte("pre"), "a"); !bytes.HasPrefix(got, []byte("pre")) || len(got) != 3+sha256.Size {
		t.Fatalf("sum appended to dst: %x", got)
	}
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, func() { p.sum(make([]byte, 0, 64)[:0], "challenge", "123456") }); n > 1 {
		t.Errorf("a pooled sum allocates %v times, want at most 1", n)
	}
}

// The keys derived from pooled states are those of the plain HMAC: store
// IDs (also of parts), CSRF tokens and the tags of signed cookies, so
// records, cookies and tokens made before the pools stay valid.
func TestPooledKeysMatchHMAC(t *testing.T) {
	k := newKeyring([]byte(strings.Repeat("s", 40)))
	for _, in := range []string{"", "alice", "challenge\x00app\x00f:xyz", strings.Repeat("é", 1000)} {
		if got, want := k.storeID(in), hex.EncodeToString(mac(k.store, in)[:20]); got != want {
			t.Errorf("storeID(%q) = %s, want %s", in, got, want)
		}
		if got, want := k.csrfToken(in), base64.RawURLEncoding.EncodeToString(mac(k.csrf, in)[:24]); got != want {
			t.Errorf("csrfToken(%q) = %s, want %s", in, got, want)
		}
		enc := base64.RawURLEncoding.EncodeToString([]byte(in))
		if got, want := signValue(k.cookieMACs, "flow", in), enc+"."+base64.RawURLEncoding.EncodeToString(mac(k.cookie, "flow", enc)[:18]); got != want {
			t.Errorf("signValue(%q) = %s, want %s", in, got, want)
		}
		if got, ok := decodeSigned(k.cookieMACs, "flow", signValue(k.cookieMACs, "flow", in)); !ok || got != in {
			t.Errorf("decodeSigned(signValue(%q)) = %q, %v", in, got, ok)
		}
	}
	if got, want := k.storeIDOf("challenge", "app", "f:xyz"), k.storeID("challenge\x00app\x00f:xyz"); got != want {
		t.Errorf("storeIDOf = %s, want %s", got, want)
	}
}

// validCSRF accepts the token of its binding and nothing else (another
// binding's, a truncated or longer one, one with a character changed),
// and checks it without allocating.
func TestValidCSRF(t *testing.T) {
	k := newKeyring([]byte(strings.Repeat("s", 40)))
	token := k.csrfToken("f:flow1")
	changed := []byte(token)
	changed[5] ^= 1
	for _, tc := range []struct {
		bound, token string
		want         bool
	}{
		{"f:flow1", token, true},
		{"f:flow2", token, false},
		{"s:flow1", token, false},
		{"f:flow1", token[:len(token)-1], false},
		{"f:flow1", token + "A", false},
		{"f:flow1", string(changed), false},
		{"f:flow1", "", false},
	} {
		if got := k.validCSRF(tc.bound, tc.token); got != tc.want {
			t.Errorf("validCSRF(%q, %q) = %v, want %v", tc.bound, tc.token, got, tc.want)
		}
	}
	// The kind and ID of a binding, given apart, are the binding joined.
	for _, id := range []string{"", "flow1", strings.Repeat("x", 43), "a\x00b"} {
		if got, want := k.csrfTokenOf("f:", id), k.csrfToken("f:"+id); got != want {
			t.Errorf("csrfTokenOf(f:, %q) = %s, want %s", id, got, want)
		}
		if !k.validCSRFOf("f:", id, k.csrfToken("f:"+id)) || k.validCSRFOf("s:", id, k.csrfToken("f:"+id)) {
			t.Errorf("validCSRFOf(f:, %q) disagrees with csrfToken", id)
		}
	}
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, func() { k.validCSRF("f:flow1", token) }); n != 0 {
		t.Errorf("validCSRF allocates %v times, want 0", n)
	}
	id := strings.Repeat("i", 43)
	if n := testing.AllocsPerRun(100, func() { k.validCSRFOf("f:", id, token) }); n != 0 {
		t.Errorf("validCSRFOf allocates %v times, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { k.csrfTokenOf("f:", id) }); n != 1 {
		t.Errorf("csrfTokenOf allocates %v times, want 1", n)
	}
}

// A flow cookie's value is signed from its payload's bytes and read back
// with one allocation each: the value, and the payload.
func TestSignedValueAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocations are not counted under the race detector")
	}
	k := newKeyring([]byte(strings.Repeat("s", 40)))
	f := &flowState{ID: strings.Repeat("i", 43), Realm: "app", Issued: 1700000000, User: "erin@example.net", Return: "/home"}
	var buf [signScratch]byte
	v := signValue(k.cookieMACs, "flow", appendFlow(buf[:0], f))
	if got, ok := decodeSigned(k.cookieMACs, "flow", v); !ok || got != encodeFlow(f) {
		t.Fatalf("decodeSigned = %q, %v", got, ok)
	}
	if n := testing.AllocsPerRun(100, func() { signValue(k.cookieMACs, "flow", appendFlow(buf[:0], f)) }); n != 1 {
		t.Errorf("signing a flow allocates %v times, want 1", n)
	}
	if n := testing.AllocsPerRun(100, func() { decodeSigned(k.cookieMACs, "flow", v) }); n != 1 {
		t.Errorf("reading a signed value allocates %v times, want 1", n)
	}
}

// randomID is 43 characters of unpadded base64url, 32 random bytes,
// made with one allocation.
func TestRandomID(t *testing.T) {
	a, err := randomID()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := randomID()
	if raw, err := base64.RawURLEncoding.DecodeString(a); err != nil || len(raw) != 32 || len(a) != 43 || a == b {
		t.Fatalf("randomID: %q, %q (%v)", a, b, err)
	}
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = randomID() }); n != 1 {
		t.Errorf("randomID allocates %v times, want 1", n)
	}
}

// A session cookie's value is the ID and the first 16 bytes of the HMAC
// of "session", the realm and the ID, base64url, as before the tag came
// from the pooled states; made with one allocation, and read back.
func TestSessionCookieValue(t *testing.T) {
	ss := &sessions{realm: newRealm("app", ""), keys: newKeyring([]byte(strings.Repeat("s", 32)))}
	id := []byte(strings.Repeat("i", sessionIDLen))
	tag := mac(ss.keys.cookie, "session", "app", string(id))[:16]
	want := base64.RawURLEncoding.EncodeToString(append(append([]byte{}, id...), tag...))
	if got := ss.cookieValue(id); got != want {
		t.Fatalf("cookieValue = %s, want %s", got, want)
	}
	if got, ok := ss.idFromCookie(want); !ok || got != string(id) {
		t.Fatalf("idFromCookie = %q, %v", got, ok)
	}
	if raceEnabled {
		return
	}
	if n := testing.AllocsPerRun(100, func() { ss.cookieValue(id) }); n != 1 {
		t.Errorf("cookieValue allocates %v times, want 1", n)
	}
}
