package caddymfa

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
)

// SECURITY.md J43: unsafe configurations are refused with a clear message.
func TestProvisionRefusesUnsafeConfigs(t *testing.T) {
	tests := []struct {
		name   string
		change func(h *Handler)
		want   string
	}{
		{"short secret key", func(h *Handler) { h.SecretKey = "short" }, "at least 32"},
		{"max_attempts 0", func(h *Handler) { h.Email.MaxAttempts = -1 }, "max_attempts"},
		{"max_attempts 101", func(h *Handler) { h.Email.MaxAttempts = 101 }, "max_attempts"},
		{"code_ttl 11m", func(h *Handler) { h.Email.CodeTTL = caddy.Duration(11 * time.Minute) }, "code_ttl"},
		{"code_length 3", func(h *Handler) { h.Email.CodeLength = 3 }, "code_length"},
		{"code_length 11", func(h *Handler) { h.Email.CodeLength = 11 }, "code_length"},
		{"lockout 101", func(h *Handler) { h.Lockout = &Lockout{Failures: 101} }, "lockout"},
		{"send link", func(h *Handler) { h.Email.Send = "link" }, "send"},
		{"base_url not absolute", func(h *Handler) { h.BaseURL = "app.example.com" }, "base_url"},
		{"standalone without users", func(h *Handler) { h.User = new(string); h.Users = nil }, "no users"},
		{"address in standalone", func(h *Handler) { h.User = new(string); h.Email.Address = "{http.request.header.X-Email}" }, "address"},
		{"no authenticator", func(h *Handler) { h.Email = nil }, "email"},
		{"bad user email", func(h *Handler) { h.Users = []UserEntry{{Name: "x", Email: "x@y\r\nBcc: z@w"}} }, "email"},
		{"duplicate user", func(h *Handler) { h.Users = []UserEntry{{Name: "x"}, {Name: "x"}} }, "twice"},
		// Standalone mode looks typed names up by their canonical form,
		// so there "x" and "X" are one user (SECURITY.md K51).
		{"duplicate user standalone", func(h *Handler) {
			h.User = new(string)
			h.Users = []UserEntry{{Name: "x", Email: "x@example.com"}, {Name: "X", Email: "y@example.com"}}
		}, "twice"},
		{"bad allow_emails", func(h *Handler) { h.AllowEmails = []string{"[bad@x"} }, "allow_emails"},
		{"missing users_file", func(h *Handler) { h.UsersFile = "/nonexistent/users.json" }, "users_file"},
		{"totp skew 3", func(h *Handler) { h.TOTP = &totp.Config{Issuer: "X", Skew: 3} }, "skew"},
		{"totp digits 7", func(h *Handler) { h.TOTP = &totp.Config{Issuer: "X", Digits: 7} }, "digits"},
		{"totp without issuer or base_url", func(h *Handler) { h.TOTP = &totp.Config{} }, "issuer or base_url"},
		{"totp unknown enroll", func(h *Handler) { h.TOTP = &totp.Config{Issuer: "X", Enroll: "always"} }, "enroll"},
		{"first_login in standalone", func(h *Handler) {
			h.User = new(string)
			h.TOTP = &totp.Config{Issuer: "X", Enroll: totp.EnrollFirstLogin}
		}, "first_login"},
		{"verified without email", func(h *Handler) { h.Email = nil; h.TOTP = &totp.Config{Issuer: "X"} }, "no email block"},
		{"recovery_codes 5", func(h *Handler) { h.TOTP = &totp.Config{Issuer: "X"}; h.RecoveryCodes = 5 }, "recovery_codes"},
		{"recovery_codes 101", func(h *Handler) { h.TOTP = &totp.Config{Issuer: "X"}; h.RecoveryCodes = 101 }, "recovery_codes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := testConfig(t)
			tt.change(h)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			if err == nil {
				err = h.Validate()
			}
			_ = h.Cleanup()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

func TestUsersFileAndAllowEmails(t *testing.T) {
	h, outbox := testConfig(t)
	file := filepath.Join(t.TempDir(), "users.json")
	data, _ := json.Marshal([]UserEntry{{Name: "Erin", Email: "erin@example.net"}})
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	h.UsersFile = file
	h.AllowEmails = []string{"*@corp.example"}
	e := newEnv(t, h, outbox)
	for user, want := range map[string]string{
		"Erin":               "erin@example.net",
		"erin":               "", // a different first-factor user (SECURITY.md K51)
		"frank@corp.example": "frank@corp.example",
		"frank@other.test":   "",
		"dave":               "", // disabled
		"carol":              "", // no address
		"nobody":             "",
	} {
		if got := e.h.dir.emailFor(user); got != want {
			t.Errorf("emailFor(%q) = %q, want %q", user, got, want)
		}
	}
}

func TestGeneratedSecretKeyPersists(t *testing.T) {
	h, outbox := testConfig(t)
	h.SecretKey = ""
	raw := h.StorageRaw // Provision consumes it
	e := newEnv(t, h, outbox)
	first := e.h.keys
	rec, err := e.h.store.Get(t.Context(), keySecret)
	if err != nil || len(rec.Value) < minSecretKeyLen {
		t.Fatalf("generated key not stored: %v", err)
	}
	// A second handler on the same store derives the same keys.
	h2 := &Handler{StorageRaw: raw, Users: []UserEntry{{Name: "a", Email: "a@example.com"}}}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h2.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if string(h2.keys.cookie) != string(first.cookie) {
		t.Fatal("second provision derived different keys")
	}
}
