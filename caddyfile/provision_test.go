package caddyfile

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/caddymfa"
	"github.com/caddymfa/caddy-mfa/internal/geoiptest"
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
	obj["geoip_db"] = geoiptest.CountryDB(t, map[string]string{"198.51.100.0/24": "SE"})
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
	t.Setenv("MFA_TEST_GEOIP_DB", geoiptest.CountryDB(t, map[string]string{"198.51.100.0/24": "SE"}))
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

// TestAdaptedSMSProvisions loads the mfa handlers adapted from the sms
// golden files, and full.caddyfiletest, as Caddy does, with the outbox
// moved to a temporary directory, and provisions each sms block with the
// sms package: the JSON the Caddyfile writes for the twilio, webhook and
// outbox providers must pass the providers' and the authenticator's own
// checks, with placeholders resolved then, and the users' numbers must be
// ones the block may text.
func TestAdaptedSMSProvisions(t *testing.T) {
	t.Setenv("TWILIO_ACCOUNT_SID", "AC"+strings.Repeat("0123456789abcdef", 2))
	t.Setenv("TWILIO_AUTH_TOKEN", "test-auth-token")
	t.Setenv("SMS_GATEWAY_TOKEN", "test-gateway-token")
	tests := []struct {
		name     string
		load     bool // whether the whole handler is loaded too
		handlers int
	}{
		{"sms_outbox.caddyfiletest", true, 1},
		{"sms_twilio.caddyfiletest", true, 2},
		{"sms_webhook.caddyfiletest", true, 1},
		// its users_file and secret_key name what this machine lacks
		{"full.caddyfiletest", false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			handlers := goldenHandlers(t, tt.name)
			if len(handlers) != tt.handlers {
				t.Fatalf("got %d mfa handlers; want %d", len(handlers), tt.handlers)
			}
			for _, obj := range handlers {
				if obj["sms"] == nil {
					t.Fatal("no sms in the adapted handler")
				}
				if tt.load {
					if _, raw, err := loadAdapted(t, obj); err != nil {
						t.Fatalf("loading %s: %v", raw, err)
					}
				}
				checkSMS(t, obj)
			}
		})
	}
}

// TestSMSCheckedAtProvision shows what the sms block leaves to provision:
// settings the parser accepts and the sms package refuses when the block
// is provisioned, such as a missing provider or a twilio provider without
// a sender, and placeholders resolved then.
func TestSMSCheckedAtProvision(t *testing.T) {
	t.Setenv("MFA_TEST_SMS_OUTBOX", t.TempDir())
	t.Setenv("MFA_TEST_TWILIO_TOKEN", "test-auth-token")
	const sid = "AC0123456789abcdef0123456789abcdef"

	tests := []struct {
		name string
		body string // lines of the sms block
		want string // a fragment of the error; "" if the block provisions
	}{
		{"outbox with a placeholder dir", "provider outbox {env.MFA_TEST_SMS_OUTBOX}", ""},
		{"twilio on this machine", "provider twilio {\naccount_sid " + sid + "\nauth_token {env.MFA_TEST_TWILIO_TOKEN}\nfrom +12015550100\napi_url http://127.0.0.1:8089\n}", ""},
		{"webhook form", "provider webhook https://sms.example.com/send {\nformat form\nbody \"to={to}&code={code}\"\n}", ""},
		{"no provider", "message \"Your code is %s\"", "a provider is required"},
		{"outbox unset placeholder", "provider outbox {env.MFA_TEST_SMS_OUTBOX_UNSET}", "dir is required"},
		{"twilio without a sender", "provider twilio {\naccount_sid " + sid + "\nauth_token {env.MFA_TEST_TWILIO_TOKEN}\n}", "from or messaging_service_sid is required"},
		{"twilio with two senders", "provider twilio {\naccount_sid " + sid + "\nauth_token {env.MFA_TEST_TWILIO_TOKEN}\nfrom +12015550100\nmessaging_service_sid MG0123456789abcdef0123456789abcdef\n}", "from and messaging_service_sid are alternatives"},
		{"twilio unset auth_token", "provider twilio {\naccount_sid " + sid + "\nauth_token {env.MFA_TEST_TWILIO_TOKEN_UNSET}\nfrom +12015550100\n}", "auth_token is empty"},
		{"twilio plain http to another host", "provider twilio {\naccount_sid " + sid + "\nauth_token {env.MFA_TEST_TWILIO_TOKEN}\nfrom +12015550100\napi_url http://api.example.com\n}", "api_url must use https"},
		{"webhook body without {to}", "provider webhook https://sms.example.com/send {\nbody `{\"text\":\"{message}\"}`\n}", "body must contain {to}"},
		{"webhook bare placeholder in JSON", "provider webhook https://sms.example.com/send {\nbody `{\"to\":{to},\"text\":\"{message}\"}`\n}", "body is not valid JSON"},
		{"code_ttl above 10m", "provider outbox {env.MFA_TEST_SMS_OUTBOX}\ncode_ttl 11m", "code_ttl 11m0s outside"},
		{"max_attempts above 100", "provider outbox {env.MFA_TEST_SMS_OUTBOX}\nmax_attempts 101", "max_attempts 101 outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := "app.example.com {\n\tmfa {\n\t\tusers {\n\t\t\talice phone +12015550123\n\t\t}\n\t\tsms {\n" +
				tt.body + "\n\t\t}\n\t}\n}\n"
			handlers := adaptedHandlers(t, input)
			if len(handlers) != 1 {
				t.Fatalf("got %d mfa handlers; want 1", len(handlers))
			}
			_, err := provisionSMS(t, handlers[0]["sms"])
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("provisioning: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("provisioning succeeded; want an error containing %q", tt.want)
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
// store and the email and sms outboxes moved to a temporary directory
// (obj is changed to match), and returns the
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
	if s, ok := obj["sms"].(map[string]any); ok {
		if p, ok := s["provider"].(map[string]any); ok && p["provider"] == "outbox" {
			p["dir"] = filepath.Join(dir, "sms-outbox")
		}
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

// checkSMS provisions the sms block of a handler object with the sms
// package, and checks that the users' phone numbers are valid and in its
// allowed_countries.
func checkSMS(t *testing.T, obj map[string]any) {
	t.Helper()
	c, err := provisionSMS(t, obj["sms"])
	if err != nil {
		t.Fatalf("provisioning sms: %v", err)
	}
	users, _ := obj["users"].([]any)
	for _, u := range users {
		phone, _ := u.(map[string]any)["phone"].(string)
		if phone == "" {
			continue
		}
		if _, _, err := c.CheckNumber(phone); err != nil {
			t.Errorf("phone %s: %v", phone, err)
		}
	}
}

// provisionSMS decodes an adapted sms block strictly, as the handler
// does, and provisions it in a context of its own; the delivery workers
// are stopped and the provider cleaned up when the test ends.
func provisionSMS(t *testing.T, block any) (*sms.Config, error) {
	t.Helper()
	raw, err := json.Marshal(block)
	if err != nil {
		t.Fatal(err)
	}
	c := new(sms.Config)
	if err := caddy.StrictUnmarshalJSON(raw, c); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", raw, err)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(func() {
		if err := c.Cleanup(); err != nil {
			t.Errorf("sms cleanup: %v", err)
		}
		cancel()
	})
	if err := c.Provision(ctx, nil); err != nil {
		return nil, err
	}
	return c, nil
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
