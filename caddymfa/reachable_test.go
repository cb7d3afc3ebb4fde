package caddymfa

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
)

// A listed user with no way to receive a code is refused when the
// config loads, by name, unless an authenticator app can be set up for
// them or no code is ever asked.
func TestUserWithoutAddressIsRefused(t *testing.T) {
	noAddress := func(h *Handler) { h.Users = append(h.Users, UserEntry{Name: "Zoe"}) }
	tests := []struct {
		name   string
		change func(h *Handler)
		want   string // "" accepts
	}{
		{"no email, no phone", noAddress, `users: user "Zoe" has no email or phone`},
		{"from users_file", func(h *Handler) {
			file := filepath.Join(t.TempDir(), "users.json")
			if err := os.WriteFile(file, []byte(`[{"name": "yann"}]`), 0o600); err != nil {
				t.Fatal(err)
			}
			h.UsersFile = file
		}, `users.json: user "yann" has no email or phone`},
		{"phone only", func(h *Handler) { h.Users = append(h.Users, UserEntry{Name: "zoe", Phone: "+12015550111"}) }, ""},
		{"email only", func(h *Handler) { h.Users = append(h.Users, UserEntry{Name: "zoe", Email: "zoe@example.com"}) }, ""},
		{"disabled", func(h *Handler) { h.Users = append(h.Users, UserEntry{Name: "zoe", Disabled: true}) }, ""},
		{"totp verified: an administrator can enroll", func(h *Handler) {
			noAddress(h)
			h.TOTP = &totp.Config{Issuer: "X"}
		}, ""},
		{"totp first_login", func(h *Handler) {
			noAddress(h)
			h.TOTP = &totp.Config{Issuer: "X", Enroll: totp.EnrollFirstLogin}
		}, ""},
		{"address from the first factor", func(h *Handler) {
			noAddress(h)
			h.Email.Address = "{http.request.header.X-Email}"
		}, ""},
		{"policy never", func(h *Handler) { noAddress(h); h.Policy = policyNever }, ""},
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
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// Errors about a user name where the user came from: users or users_file.
func TestUserErrorsNameTheirSource(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(file, []byte(`[{"name": "yann", "phone": "12"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		change func(h *Handler)
		want   string
	}{
		{"bad email in users", func(h *Handler) { h.Users = []UserEntry{{Name: "x", Email: "not an address"}} }, `users: user "x": email: `},
		{"twice in users", func(h *Handler) { h.Users = []UserEntry{{Name: "x", Email: "x@example.com"}, {Name: "x"}} }, `users: user "x" is listed twice`},
		{"bad phone in users_file", func(h *Handler) { h.UsersFile = file }, `users_file ` + file + `: user "yann": phone: `},
		{"invalid name in users_file", func(h *Handler) {
			f := filepath.Join(t.TempDir(), "u.json")
			if err := os.WriteFile(f, []byte(`[{"name": "a@example.com"}, {"name": " "}]`), 0o600); err != nil {
				t.Fatal(err)
			}
			h.UsersFile = f
		}, `: user 2: invalid name " "`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := testConfig(t)
			tt.change(h)
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			err := h.Provision(ctx)
			_ = h.Cleanup()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}
