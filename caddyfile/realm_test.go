package caddyfile

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// validateCaddyfile adapts a whole Caddyfile and provisions it as
// `caddy validate` does, without listening: the handlers see their
// servers and routes, so the checks that need the site's hosts run.
func validateCaddyfile(t *testing.T, input string) error {
	t.Helper()
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	return caddy.Validate(&cfg)
}

// TestRealmCheckedAtProvision shows the realm, cookie_domain, methods and
// max_age settings the parser accepts and the handler refuses when it is
// provisioned, with an error that says why (SECURITY.md K49, K50).
func TestRealmCheckedAtProvision(t *testing.T) {
	tests := []struct {
		name  string
		hosts string // the site addresses
		body  string // lines of the mfa block, besides users, storage and email
		want  string // a fragment of the error; "" if the config loads
	}{
		{"named realm", "", "realm corp-sso", ""},
		{"cookie_domain over the site's hosts", "http://app.example.com, http://wiki.example.com", "cookie_domain example.com", ""},
		{"cookie_domain with a leading dot", "", "cookie_domain .example.com", ""},
		{"cookie_domain equal to the host", "http://example.com", "cookie_domain example.com", ""},
		{"step-up", "", "methods totp recovery\nmax_age 10m\ntotp {\n\tissuer Example\n}", ""},
		{"max_age alone", "", "max_age 10m", ""},
		{"realm with a slash", "", "realm corp/sso", `realm "corp/sso": want a name of 1 to 64 letters`},
		{"realm with a space", "", `realm "corp sso"`, `realm "corp sso": want a name`},
		{"realm too long", "", "realm " + strings.Repeat("r", 65), "want a name of 1 to 64"},
		{"cookie_domain of another site", "", "cookie_domain example.org", `cookie_domain "example.org" does not cover the site's host "app.example.com"`},
		{"cookie_domain of a sibling", "", "cookie_domain wiki.example.com", `does not cover the site's host "app.example.com"`},
		{"cookie_domain a suffix of the name only", "http://app.myexample.com", "cookie_domain example.com", `does not cover the site's host "app.myexample.com"`},
		{"cookie_domain a public suffix", "http://app.example.co.uk", "cookie_domain co.uk", `cookie_domain "co.uk" is a public suffix`},
		{"cookie_domain a top-level domain", "", "cookie_domain com", `cookie_domain "com": want a domain name`},
		{"cookie_domain a URL", "", "cookie_domain https://example.com", `want a domain name such as example.com`},
		{"methods not configured", "", "methods sms", "methods: sms is not configured in this handler"},
		{"methods recovery without totp", "", "methods recovery", "methods: recovery is not configured"},
		{"methods with policy never", "", "methods email\npolicy never", "policy never asks for none"},
		{"max_age with policy never", "", "max_age 1h\npolicy never", "policy never asks for none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			hosts := tt.hosts
			if hosts == "" {
				hosts = "http://app.example.com"
			}
			input := "{\n\tadmin off\n\tstorage file_system " + filepath.Join(dir, "caddy") + "\n}\n" +
				hosts + " {\n\tmfa {\n" + tt.body +
				"\n\t\tstorage badger " + filepath.Join(dir, "mfa") +
				"\n\t\tusers {\n\t\t\talice email alice@example.com\n\t\t}\n\t\temail {\n\t\t\toutbox " + filepath.Join(dir, "mailbox") + "\n\t\t}\n\t}\n\trespond ok\n}\n"
			err := validateCaddyfile(t, input)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("loading:\n%s\n%v", input, err)
			case tt.want != "" && err == nil:
				t.Fatalf("loading succeeded; want an error containing %q:\n%s", tt.want, input)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}
