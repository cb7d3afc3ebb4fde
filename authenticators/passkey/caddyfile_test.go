package passkey

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// TestUnmarshalCaddyfile reads a passkey block on its own, as the mfa
// directive hands it over.
func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name, input, want, wantErr string
	}{
		{name: "bare", input: "passkey", want: `{}`},
		{name: "empty block", input: "passkey {\n}", want: `{}`},
		{
			name:  "every option",
			input: "passkey {\n\trp_name \"Example Corp\"\n\tuser_verification required\n\tattestation direct\n\tenroll first_login\n\tpasswordless on\n}",
			want:  `{"rp_name":"Example Corp","user_verification":"required","attestation":"direct","enroll":"first_login","passwordless":true}`,
		},
		{name: "passwordless off", input: "passkey {\n\tpasswordless off\n}", want: `{}`},
		{name: "argument", input: "passkey on", wantErr: "wrong argument count"},
		{name: "user verification", input: "passkey {\n\tuser_verification always\n}", wantErr: `unrecognized passkey user_verification "always": must be preferred, required or discouraged, at Testfile:2`},
		{name: "attestation", input: "passkey {\n\tattestation enterprise\n}", wantErr: `unrecognized passkey attestation "enterprise"`},
		{name: "enroll off", input: "passkey {\n\tenroll off\n}", wantErr: `unrecognized passkey enroll policy "off"`},
		{name: "passwordless yes", input: "passkey {\n\tpasswordless yes\n}", wantErr: `invalid passwordless value "yes": must be on or off`},
		{name: "passwordless missing", input: "passkey {\n\tpasswordless\n}", wantErr: "wrong argument count"},
		{name: "two args", input: "passkey {\n\trp_name a b\n}", wantErr: "wrong argument count"},
		{name: "twice", input: "passkey {\n\tenroll verified\n\tenroll verified\n}", wantErr: `duplicate mfa passkey subdirective "enroll"`},
		{name: "unknown", input: "passkey {\n\tpasswordles on\n}", wantErr: `unrecognized mfa passkey subdirective "passwordles"`},
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

// FuzzUnmarshalCaddyfile: any input either fails to parse or gives a
// block that validates once defaults are applied.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, seed := range []string{
		"passkey",
		"passkey {\n}",
		"passkey {\n\trp_name \"Example Corp\"\n\tuser_verification required\n\tattestation direct\n\tenroll first_login\n\tpasswordless on\n}",
		"passkey {\n\tuser_verification discouraged\n\tattestation indirect\n\tpasswordless off\n}",
		"passkey on {\n\tenroll\n}",
		"passkey {\n\t{\n\t}\n}",
		"passkey {\n\trp_name {env.SITE}\n}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, input string) {
		var c Config
		if err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
			return
		}
		c.ApplyDefaults()
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted block fails validation: %v\n%s", err, input)
		}
		if _, err := json.Marshal(&c); err != nil {
			t.Fatal(err)
		}
	})
}
