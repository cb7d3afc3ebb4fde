package caddymfa

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// fillAll sets every field of the value v points to, recursively, to a
// value that is not zero: a field the binary form leaves out comes back
// zero and the round trip fails.
func fillAll(t *testing.T, rng *rand.Rand, v reflect.Value) {
	t.Helper()
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d-é<&>\x00\"\\\t\u2028", rng.IntN(1000)))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		if v.Type() == reflect.TypeFor[time.Duration]() {
			v.SetInt(int64(rng.IntN(1e9) + 1))
			return
		}
		v.SetInt(int64(rng.IntN(1<<30)+1) * int64(1-2*rng.IntN(2)))
	case reflect.Uint8, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(rng.Uint32()|1) & (1<<v.Type().Bits() - 1))
	case reflect.Slice:
		n := 1 + rng.IntN(3)
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			fillAll(t, rng, s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		for range 1 + rng.IntN(3) {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fillAll(t, rng, k)
			fillAll(t, rng, e)
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Pointer:
		p := reflect.New(v.Type().Elem())
		fillAll(t, rng, p.Elem())
		v.Set(p)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Unix(rng.Int64N(1<<34)-1<<33, rng.Int64N(1e9)).UTC()))
			return
		}
		for i := range v.NumField() {
			if !v.Type().Field(i).IsExported() && !v.Type().Field(i).Anonymous {
				t.Fatalf("%s.%s: an unexported field the record cannot store", v.Type(), v.Type().Field(i).Name)
			}
			fillAll(t, rng, v.Field(i))
		}
	default:
		t.Fatalf("fillAll: no filler for %s", v.Type())
	}
}

// testRecordRoundTrip: a record of type T with every field set, and the
// zero record, come back the same from the binary form; the JSON form
// earlier versions wrote still reads the same; and the binary form is what
// encodeRecord writes.
func testRecordRoundTrip[T any](t *testing.T, format byte) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		var v T
		if i > 0 {
			fillAll(t, rng, reflect.ValueOf(&v).Elem())
		}
		b, err := encodeRecord(v)
		if err != nil || len(b) == 0 || b[0] != format {
			t.Fatalf("%T: encoded to %q, %v", v, b, err)
		}
		got, err := decodeRecord[T](b)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("binary %T:\n got %+v, %v\nwant %+v", v, got, err, v)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		got, err = decodeRecord[T](j)
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("JSON %s:\n got %+v, %v\nwant %+v", j, got, err, v)
		}
	}
}

// TestRecordFieldsRoundTrip: every field of every record with a binary
// form survives it, and the JSON of earlier versions is still read.
func TestRecordFieldsRoundTrip(t *testing.T) {
	t.Run("challenge", func(t *testing.T) { testRecordRoundTrip[challenge](t, formatChallenge) })
	t.Run("session", func(t *testing.T) { testRecordRoundTrip[session](t, formatSession) })
	t.Run("lock", func(t *testing.T) { testRecordRoundTrip[lockRecord](t, formatLock) })
	t.Run("user", func(t *testing.T) { testRecordRoundTrip[userRecord](t, formatUser) })
	t.Run("log entry", func(t *testing.T) { testRecordRoundTrip[logEntry](t, formatLogEntry) })
	t.Run("live flow", func(t *testing.T) { testRecordRoundTrip[liveFlow](t, formatLiveFlow) })
}

// fuzzRecord: no input makes decodeRecord[T] panic, and what it accepts,
// binary or JSON, encodes to a binary form that decodes to a record that
// encodes to the same bytes (SECURITY.md J42).
func fuzzRecord[T any](f *testing.F, seeds ...T) {
	for _, s := range seeds {
		b, err := encodeRecord(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		j, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(j)
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte{})
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := decodeRecord[T](data)
		if err != nil {
			return
		}
		b, err := encodeRecord(v)
		if err != nil {
			t.Fatalf("%q decodes to %+v, which does not encode: %v", data, v, err)
		}
		again, err := decodeRecord[T](b)
		if err != nil {
			t.Fatalf("%q decodes to %+v, which encodes to %q, which does not decode: %v", data, v, b, err)
		}
		if b2, _ := encodeRecord(again); !bytes.Equal(b2, b) {
			t.Fatalf("%q: %q decodes to %+v, which encodes to %q", data, b, again, b2)
		}
		if len(data) > 0 && data[0] == b[0] && !reflect.DeepEqual(again, v) {
			t.Fatalf("binary %q decodes to %+v, and again to %+v", data, v, again)
		}
	})
}

func FuzzDecodeChallenge(f *testing.F) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 5, time.UTC)
	fuzzRecord(f,
		challenge{Realm: "app", User: "alice", Method: "email", CodeMAC: []byte("0123456789abcdef0123456789abcdef"),
			Attempts: 1, Sends: 2, Destination: "a***@e***.com", State: statePending, IssuedAt: at,
			ExpiresAt: at.Add(10 * time.Minute), KeepUntil: at.Add(time.Hour), CoolKeys: []string{"thr/cooldown/x"}},
		challenge{Realm: "r", User: "bob", Method: "email", LinkMAC: []byte("mac"), State: stateVerified, Failed: true, Unsent: true,
			Address: "bob@example.com", UsedAt: at, Match: 42, From: &linkOrigin{Browser: "Firefox", System: "Linux", Country: "SE", Time: at}},
	)
	f.Add([]byte(`{"rl":"app","u":"alice","m":"email","c":"AAAA","a":1,"s":1,"st":"pending","i":"2026-01-01T00:00:00Z","e":"2026-01-01T00:10:00+02:00","k":"2026-01-01T01:00:00Z"}`))
}

func FuzzDecodeSession(f *testing.F) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 5, time.UTC)
	fuzzRecord(f,
		session{Realm: "app", User: "alice", Method: "email", Host: "app.example.com", Created: at, Expires: at.Add(12 * time.Hour),
			LastSeen: at, origin: origin{UserAgent: "Mozilla/5.0", IP: "203.0.113.5", Country: "SE"}, Device: "0c4d",
			Verified: map[string]time.Time{"email": at, "totp": at.Add(time.Minute)}},
		session{Realm: "r", FirstFactor: "Alice", User: "alice", Method: "known_ip"},
	)
	f.Add([]byte(`{"rl":"app","ff":"","u":"alice","m":"email","h":"app.test","c":"2026-01-01T00:00:00Z","e":"2026-01-01T12:00:00Z","l":"2026-01-01T00:00:00Z","ip":"192.0.2.1","v":{"email":"2026-01-01T00:00:00Z"}}`))
}

func FuzzDecodeLockRecord(f *testing.F) {
	fuzzRecord(f, lockRecord{Fails: 3}, lockRecord{Fails: 10, LockedUntil: time.Date(2026, 12, 1, 10, 15, 0, 0, time.UTC)})
	f.Add([]byte(`{"f":3}`))
	f.Add([]byte(`{"f":10,"l":"2026-12-01T10:15:00.5+01:00"}`))
}

func FuzzDecodeUserRecord(f *testing.F) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var pk passkeyFactor
	pk.ID, pk.PublicKey, pk.SignCount, pk.Transports, pk.UserVerified = []byte("cred"), []byte("key"), 7, []string{"usb", "nfc"}, true
	pk.Name, pk.Added, pk.LastUsed = "YubiKey", at, at.Add(time.Hour)
	fuzzRecord(f,
		userRecord{TOTP: &totpFactor{Secret: "sealed", LastStep: 59000000, Added: at}, Recovery: [][]byte{[]byte("h1"), []byte("h2")},
			LastMethod: "totp", Known: []knownPlace{{IP: "203.0.113.5", Country: "SE", Seen: at}}, Lang: "sv"},
		userRecord{Phone: "+15551234567", Email: "a@example.com", Passkeys: []passkeyFactor{pk}, PasskeyHandle: []byte("handle")},
	)
	f.Add([]byte(`{"totp":{"s":"sealed","ls":123,"a":"2026-01-01T00:00:00Z"},"rc":["AAAA"],"lm":"totp"}`))
	f.Add([]byte(`{"lm":"email","kn":[{"ip":"192.0.2.1","c":"SE","t":"2026-01-01T00:00:00Z"}]}`))
}

func FuzzDecodeLogEntry(f *testing.F) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	var ok, failed logEntry
	ok.Seq, ok.Time, ok.ChallengeID, ok.Method, ok.User, ok.To, ok.Attempt, ok.OK, ok.Latency = 7, at, "c1", "email", "alice", "a***@e***.com", 1, true, 3*time.Millisecond
	failed.Seq, failed.Time, failed.Method, failed.To, failed.Attempt, failed.Permanent, failed.Error = 8, at, "sms", "+1*******67", 3, true, "550 no such user"
	fuzzRecord(f, ok, failed)
	f.Add([]byte(`{"seq":7,"time":"2026-12-01T10:00:00Z","challenge_id":"c1","method":"email","to":"a***@e***.com","attempt":1,"ok":true,"latency":3000000}`))
}

func FuzzDecodeLiveFlow(f *testing.F) {
	fuzzRecord(f, liveFlow{ID: "flow-id", Issued: 1764583200, Sent: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)})
	f.Add([]byte(`{"id":"flow-id","t":1764583200,"s":"2026-12-01T10:00:00Z"}`))
}
