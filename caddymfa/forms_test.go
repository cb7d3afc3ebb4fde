package caddymfa

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// decodeFlat takes the flat bodies scripts send and gives the form
// encoding/json gives; it leaves everything else to encoding/json.
func TestFormDecodeFlat(t *testing.T) {
	for _, tc := range []struct {
		body string
		flat bool
	}{
		{`{}`, true},
		{`{"username":"erin@example.net","csrf_token":"abc"}`, true},
		{" {\n\t\"method\" : \"email\" ,\r\"code\":\"123456\"} \n", true},
		{`{"code":"1","code":"2"}`, true},
		{`{"name":"Grüße"}`, true},
		{`{"Username":"erin"}`, false},       // encoding/json matches names in any case
		{`{"username":"a\"b"}`, false},       // an escape
		{`{"remember":true}`, false},         // not a string field
		{`{"credential":{"id":"x"}}`, false}, // nor this
		{`{"unknown":"x"}`, false},           // ignored by encoding/json
		{`{"code":123456}`, false},           // a number
		{"{\"name\":\"\xff\"}", false},       // invalid UTF-8, replaced by encoding/json
		{"{\"name\":\"a\tb\"}", false},       // a control character
		{`{"code":"1"} x`, false},            // trailing data
		{`{"code":"1",}`, false},             // a trailing comma
		{`{"code":"1"`, false},               // cut short
		{`null`, false},
		{``, false},
	} {
		var got form
		if ok := got.decodeFlat([]byte(tc.body)); ok != tc.flat {
			t.Errorf("%q: decodeFlat %v, want %v", tc.body, ok, tc.flat)
			continue
		}
		if !tc.flat {
			if !reflect.DeepEqual(got, form{}) {
				t.Errorf("%q: decodeFlat refused but changed the form: %+v", tc.body, got)
			}
			continue
		}
		var want form
		if err := json.Unmarshal([]byte(tc.body), &want); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %+v, encoding/json %+v (%v)", tc.body, got, want, err)
		}
	}
	if raceEnabled {
		return
	}
	body := []byte(`{"username":"erin@example.net","csrf_token":"wI1U_rT3vQxYkA1bC2dE3fG4hJ5kL6mN","method":"email","code":"123456"}`)
	if n := testing.AllocsPerRun(100, func() {
		var f form
		f.decodeFlat(body)
	}); n != 1 {
		t.Errorf("decoding a flat body allocates %v times, want 1", n)
	}
}

// What decodeFlat accepts, encoding/json decodes into the same form.
func FuzzFormDecodeFlat(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"username":"erin@example.net","csrf_token":"abc"}`, `{"method":"totp","code":"123456"}`,
		`{"Code":"1"}`, `{"code":"1","code":"2"}`, `{"remember":"on","code":"1"}`, "{\"name\":\"\xc3\xa9\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got form
		if !got.decodeFlat(b) {
			if !reflect.DeepEqual(got, form{}) {
				t.Fatalf("%q: decodeFlat refused but changed the form: %+v", b, got)
			}
			return
		}
		var want form
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%q: decodeFlat accepted what encoding/json refuses: %v", b, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %+v, encoding/json %+v", b, got, want)
		}
	})
}

// The flat JSON reader knows every string field of form by its JSON
// name: a field added to form without a case in stringField would send
// every body that carries it to encoding/json.
func TestFormFlatKnowsEveryStringField(t *testing.T) {
	var f form
	v := reflect.ValueOf(&f).Elem()
	for i := range v.NumField() {
		sf := v.Type().Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if sf.Type.Kind() != reflect.String || name == "" || name == "-" {
			continue
		}
		if got := f.stringField([]byte(name)); got != v.Field(i).Addr().Interface().(*string) {
			t.Errorf("stringField(%q) is not form.%s", name, sf.Name)
		}
	}
}
