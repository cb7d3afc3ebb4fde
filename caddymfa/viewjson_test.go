package caddymfa

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// jsonAnswer is what writeJSON answers for v.
func jsonAnswer(v *view) []byte {
	w := httptest.NewRecorder()
	_ = writeJSON(w, 200, v)
	return w.Body.Bytes()
}

// encodingJSON is what encoding/json's Encoder writes for v.
func encodingJSON(t testing.TB, v *view) []byte {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestViewJSONMatchesEncodingJSON: the JSON answers are byte for byte
// what encoding/json writes, for every field of a view alone (a field
// added to view but not to appendJSON fails here), for views with random
// sets of fields, and for every field at its zero value where omitempty
// does not drop it (a nil pointer against a pointer to 0).
func TestViewJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	typ := reflect.TypeFor[view]()
	check := func(name string, v *view) {
		t.Helper()
		got, want := jsonAnswer(v), encodingJSON(t, v)
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
	fast := 0
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		for range 5 {
			var v view
			fillAll(t, rng, reflect.ValueOf(&v).Elem().Field(i))
			check(f.Name, &v)
			if v.viewJSONFast() {
				fast++
			}
		}
		if f.Type.Kind() == reflect.Pointer {
			var v view
			reflect.ValueOf(&v).Elem().Field(i).Set(reflect.New(f.Type.Elem()))
			check(f.Name+" at zero", &v)
		}
	}
	for n := range 500 {
		var v view
		for i := range typ.NumField() {
			// Most views hold no map, origin or passkeys: fill those less often.
			if typ.Field(i).IsExported() && rng.IntN(2) == 0 {
				fillAll(t, rng, reflect.ValueOf(&v).Elem().Field(i))
			}
		}
		if n%2 == 0 {
			v.Destinations, v.Register, v.Origin, v.Passkeys = nil, nil, nil, nil
		}
		check("random", &v)
	}
	if fast == 0 {
		t.Fatal("no view took the appender")
	}
	// A verify step as a sign-in answers it takes the appender.
	left := 2
	v := &view{Step: "verify", Method: methodEmail, Destination: "a***@e***.com", ExpiresIn: 600, AttemptsLeft: &left,
		CSRFToken: "tok", User: "alice", CanResend: true}
	if !v.viewJSONFast() {
		t.Fatal("the verify step is left to encoding/json")
	}
	check("verify", v)
}

// FuzzViewJSON: any strings in a view's fields are written as
// encoding/json writes them.
func FuzzViewJSON(f *testing.F) {
	f.Add("alice", "<script>&\"\\", 3)
	f.Add("\x00\x1f\x7f\u2028\u2029", "\xff\xfe é 日本", -1)
	f.Add("\b\f\n\r\t", "", 0)
	f.Fuzz(func(t *testing.T, a, b string, n int) {
		v := &view{Step: a, Methods: []string{a, b}, Method: b, Destination: a, ExpiresIn: n, AttemptsLeft: &n, CSRFToken: b,
			Redirect: a, User: b, Error: a, Message: a + b, RetryAfter: n, RecoveryCodes: []string{b}, Numbers: []int{n, -n}, SentAt: b}
		if got, want := jsonAnswer(v), encodingJSON(t, v); !bytes.Equal(got, want) {
			t.Fatalf("got %s\nwant %s", got, want)
		}
	})
}

// TestDecodeJSONBody: a body read in pieces of any size, into a pooled
// buffer or one that must grow, reads whole; a read error (a body over
// the limit) is returned as the reader gave it.
func TestDecodeJSONBody(t *testing.T) {
	for _, n := range []int{0, 1, 100, 511, 512, 513, 5000, 20000} {
		want := strings.Repeat("x", n)
		body, _ := json.Marshal(map[string]string{"username": want})
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(body),
			"one byte": iotest.OneByteReader(bytes.NewReader(body)),
			"half":     iotest.HalfReader(bytes.NewReader(body)),
		} {
			var f form
			if err := decodeJSONBody(r, &f); err != nil || f.Username != want {
				t.Errorf("%d bytes, %s: %d bytes read, %v", n, name, len(f.Username), err)
			}
		}
	}
	w := httptest.NewRecorder()
	var f form
	err := decodeJSONBody(http.MaxBytesReader(w, io.NopCloser(strings.NewReader(`{"username":"`+strings.Repeat("x", 100)+`"}`)), 50), &f)
	var tooBig *http.MaxBytesError
	if !errors.As(err, &tooBig) {
		t.Errorf("body over the limit: %v", err)
	}
	if err := decodeJSONBody(strings.NewReader(`{"username":`), &f); err == nil {
		t.Error("a truncated body decoded")
	}
}
