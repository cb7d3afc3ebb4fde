package caddyfile

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

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
			data, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			input, _, _ := strings.Cut(string(data), goldenSeparator)
			adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			var cfg any
			if err := json.Unmarshal(adapted, &cfg); err != nil {
				t.Fatal(err)
			}
			handlers := mfaHandlers(cfg)
			if len(handlers) == 0 {
				t.Fatal("no mfa handler in the adapted JSON")
			}
			for _, h := range handlers {
				provisionAdapted(t, h)
			}
		})
	}
}

// provisionAdapted loads one adapted mfa handler object and checks its
// totp settings.
func provisionAdapted(t *testing.T, obj map[string]any) {
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
		t.Fatalf("loading %s: %v", raw, err)
	}
	h := mod.(*caddymfa.Handler)
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
