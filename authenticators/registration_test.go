package authenticators

import (
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestRegistrationCaddyfile(t *testing.T) {
	tests := []struct {
		in   string
		want Registration
		err  string
	}{
		{"registration {\n during_login on\n require totp email\n show_info on\n}", Registration{DuringLogin: true, Require: []string{"totp", "email"}, ShowInfo: true}, ""},
		{"registration", Registration{}, ""},
		{"registration {\n during_login maybe\n}", Registration{}, "on or off"},
		{"registration {\n require\n}", Registration{}, "one or more methods"},
		{"registration {\n require password\n}", Registration{}, `unknown method "password"`},
		{"registration {\n show_info on\n show_info off\n}", Registration{}, "twice"},
		{"registration {\n colour blue\n}", Registration{}, "unrecognized"},
		{"registration now", Registration{}, "wrong argument count"},
	}
	for _, tt := range tests {
		d := caddyfile.NewTestDispenser(tt.in)
		d.Next()
		var r Registration
		err := r.UnmarshalCaddyfile(d)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%q: %v", tt.in, err)
		case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
			t.Errorf("%q: error %v, want %q", tt.in, err, tt.err)
		case tt.err == "" && !reflect.DeepEqual(r, tt.want):
			t.Errorf("%q: %+v, want %+v", tt.in, r, tt.want)
		}
	}
}
