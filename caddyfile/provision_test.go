package caddyfile

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/caddymfa"
)

// TestAdaptedTOTPProvisions loads the mfa handlers adapted from the totp
// golden files as Caddy does, with the store and the outbox moved to a
// temporary directory: the JSON the Caddyfile writes must provision and
// validate, and its totp settings must pass the authenticator's own checks.
func TestAdaptedTOTPProvisions(t *testing.T) {
	for _, name := range []string{"totp.caddyfiletest", "totp_defaults.caddyfiletest"} {
		t.Run(name, func(t *testing.T) {
			for _, obj := range goldenHandlers(t, name) {
				h, raw, err := loadAdapted(t, obj)
				if err != nil {
					t.Fatalf("loading %s: %v", raw, err)
				}
				checkTOTP(t, obj, h, raw)
			}
		})
	}
}

// TestAdaptedPolicyProvisions loads the mfa handler adapted from
// policy.caddyfiletest, with geoip_db pointed at a country database
// written for the test: policy new_country, remember_device and
// trusted_networks, including private_ranges, must provision and validate
// as the Caddyfile writes them.
func TestAdaptedPolicyProvisions(t *testing.T) {
	handlers := goldenHandlers(t, "policy.caddyfiletest")
	if len(handlers) != 1 {
		t.Fatalf("got %d mfa handlers; want 1", len(handlers))
	}
	obj := handlers[0]
	obj["geoip_db"] = countryDB(t)
	h, raw, err := loadAdapted(t, obj)
	if err != nil {
		t.Fatalf("loading %s: %v", raw, err)
	}
	if h.Policy != "new_country" {
		t.Errorf("policy %q; want new_country", h.Policy)
	}
	if d := time.Duration(h.RememberDevice); d != 30*24*time.Hour {
		t.Errorf("remember_device %s; want 720h", d)
	}
	want := []string{"private_ranges", "203.0.113.0/24", "198.51.100.7", "2001:db8::/32"}
	if got := h.TrustedNetworks; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("trusted_networks %q; want %q", got, want)
	}
}

// TestPolicyCheckedAtProvision shows the checks the parser leaves to the
// handler: settings it accepts, alone or together, that the handler
// refuses when it is provisioned, and that geoip_db placeholders are
// resolved then.
func TestPolicyCheckedAtProvision(t *testing.T) {
	t.Setenv("MFA_TEST_GEOIP_DB", countryDB(t))
	notADatabase := filepath.Join(t.TempDir(), "country.mmdb")
	if err := os.WriteFile(notADatabase, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		body string // lines of the mfa block, besides users and email
		want string // a fragment of the error; "" if the handler loads
	}{
		{"new_ip", "policy new_ip\nremember_device 1h", ""},
		{"never from trusted networks", "policy never\ntrusted_networks private_ranges ::1", ""},
		{"new_country with a placeholder geoip_db", "policy new_country\ngeoip_db {env.MFA_TEST_GEOIP_DB}", ""},
		{"standalone always", "user \"\"\npolicy always\nremember_device off", ""},
		{"new_country without geoip_db", "policy new_country", "policy new_country needs a country database"},
		{"geoip_db not a database", "policy new_country\ngeoip_db " + notADatabase, "geoip_db: "},
		{"geoip_db unset placeholder", "policy new_country\ngeoip_db {env.MFA_TEST_GEOIP_DB_UNSET}", "policy new_country needs a country database"},
		{"standalone new_ip", "user \"\"\npolicy new_ip", "user is empty (standalone)"},
		{"standalone never", "user \"\"\npolicy never", "user is empty (standalone)"},
		{"standalone trusted_networks", "user \"\"\ntrusted_networks 10.0.0.0/8", "user is empty (standalone)"},
		{"standalone remember_device", "user \"\"\nremember_device 30d", "user is empty (standalone)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := "app.example.com {\n\tmfa {\n" + tt.body +
				"\n\t\tusers {\n\t\t\talice email alice@example.com\n\t\t}\n\t\temail {\n\t\t\toutbox ./mailbox\n\t\t}\n\t}\n}\n"
			handlers := adaptedHandlers(t, input)
			if len(handlers) != 1 {
				t.Fatalf("got %d mfa handlers; want 1", len(handlers))
			}
			_, raw, err := loadAdapted(t, handlers[0])
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("loading %s: %v", raw, err)
			case tt.want != "" && err == nil:
				t.Fatalf("loading %s succeeded; want an error containing %q", raw, tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

// goldenHandlers adapts the Caddyfile of the golden file name and returns
// its mfa handler objects.
func goldenHandlers(t *testing.T, name string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	input, _, _ := strings.Cut(string(data), goldenSeparator)
	handlers := adaptedHandlers(t, input)
	if len(handlers) == 0 {
		t.Fatal("no mfa handler in the adapted JSON")
	}
	return handlers
}

// adaptedHandlers adapts a Caddyfile and returns its mfa handler objects.
func adaptedHandlers(t *testing.T, input string) []map[string]any {
	t.Helper()
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	var cfg any
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	return mfaHandlers(cfg)
}

// loadAdapted loads one adapted mfa handler object as Caddy does, with the
// store and the outbox moved to a temporary directory, and returns the
// handler, the JSON it was loaded from and the error of provisioning or
// validation.
func loadAdapted(t *testing.T, obj map[string]any) (*caddymfa.Handler, []byte, error) {
	t.Helper()
	dir := t.TempDir()
	delete(obj, "handler") // the inline key, removed by Caddy before decoding
	obj["storage"] = map[string]any{"backend": "badger", "dir": filepath.Join(dir, "store")}
	if e, ok := obj["email"].(map[string]any); ok {
		e["transport"] = map[string]any{"transport": "outbox", "dir": filepath.Join(dir, "mailbox")}
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	mod, err := ctx.LoadModuleByID("http.handlers.mfa", raw)
	cancel() // cleans up what was loaded
	if err != nil {
		return nil, raw, err
	}
	return mod.(*caddymfa.Handler), raw, nil
}

// checkTOTP checks the totp settings of a handler loaded from obj.
func checkTOTP(t *testing.T, obj map[string]any, h *caddymfa.Handler, raw []byte) {
	t.Helper()
	if h.TOTP == nil {
		t.Fatalf("no totp in %s", raw)
	}
	if n := h.RecoveryCodes; n != 0 && (n < totp.MinRecoveryCodes || n > totp.MaxRecoveryCodes) {
		t.Errorf("recovery_codes %d is outside %d..%d", n, totp.MinRecoveryCodes, totp.MaxRecoveryCodes)
	}

	// The handler may or may not have applied the defaults already, so
	// check a fresh copy of what the Caddyfile wrote.
	rawTOTP, err := json.Marshal(obj["totp"])
	if err != nil {
		t.Fatal(err)
	}
	var c totp.Config
	if err := caddy.StrictUnmarshalJSON(rawTOTP, &c); err != nil {
		t.Fatalf("decoding totp: %v", err)
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Errorf("totp %s: %v", raw, err)
	}
}

// countryDB writes a small GeoLite2-Country-shaped database and returns
// its path.
func countryDB(t *testing.T) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	_, network, err := net.ParseCIDR("198.51.100.0/24")
	if err != nil {
		t.Fatal(err)
	}
	if err := tree.Insert(network, mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String("SE")}}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "country.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

// mfaHandlers returns every JSON object in v with "handler": "mfa".
func mfaHandlers(v any) []map[string]any {
	var found []map[string]any
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == "mfa" {
			return append(found, v)
		}
		for _, e := range v {
			found = append(found, mfaHandlers(e)...)
		}
	case []any:
		for _, e := range v {
			found = append(found, mfaHandlers(e)...)
		}
	}
	return found
}
