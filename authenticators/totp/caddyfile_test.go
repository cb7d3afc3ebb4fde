package totp

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestUnmarshalCaddyfile reads a totp block on its own, as the mfa
// directive hands it over; the directive's golden files and error table
// cover the rest.
func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name, input, want, wantErr string
	}{
		{name: "bare", input: "totp", want: `{}`},
		{name: "empty block", input: "totp {\n}", want: `{}`},
		{
			name:  "every option",
			input: "totp {\n\tissuer \"Example\"\n\tdigits 8\n\tperiod 60s\n\talgorithm sha256\n\tskew 2\n\tenroll first_login\n}",
			want:  `{"issuer":"Example","digits":8,"period":60000000000,"algorithm":"sha256","skew":2,"enroll":"first_login"}`,
		},
		{name: "skew 0", input: "totp {\n\tskew 0\n}", want: `{"skew":-1}`},
		{name: "argument", input: "totp on", wantErr: "wrong argument count or unexpected line ending after 'on', at Testfile:1"},
		{name: "digits", input: "totp {\n\tdigits 7\n}", wantErr: `invalid digits "7": must be 6 or 8, at Testfile:2`},
		{name: "period", input: "totp {\n\tperiod 1500ms\n}", wantErr: `invalid period duration "1500ms"`},
		{name: "twice", input: "totp {\n\tissuer a\n\tissuer b\n}", wantErr: `duplicate mfa totp subdirective "issuer"`},
		{name: "unknown", input: "totp {\n\tlabel a\n}", wantErr: `unrecognized mfa totp subdirective "label"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("UnmarshalCaddyfile() = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile() = %v", err)
			}
			got, _ := json.Marshal(&c)
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
