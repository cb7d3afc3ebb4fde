package caddymfa

import (
	"testing"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/storage"
)

// Where codes go: a registered address first, then the one on file, then
// (second-factor mode) the first factor's; a disabled user has none; a
// phone goes only to an allowed country.
func TestAccountDestination(t *testing.T) {
	s := newServices(t, func(h *Handler) {
		h.Email.Registration = &authenticators.Registration{}
		h.SMS = &sms.Config{AllowedCountries: []string{"US"}}
	})
	ctx := t.Context()
	u := s.h.users
	for _, tc := range []struct {
		name   string
		p      principal
		method string
		want   string
	}{
		{"on file", principal{firstFactor: "alice", user: "alice", address: "a@first.example"}, methodEmail, "alice@example.com"},
		{"allow list", principal{user: "erin@example.net"}, methodEmail, "erin@example.net"},
		{"first factor", principal{firstFactor: "zed", user: "zed", address: "zed@first.example"}, methodEmail, "zed@first.example"},
		{"disabled", principal{firstFactor: "dave", user: "dave"}, methodEmail, ""},
		{"phone", principal{firstFactor: "alice", user: "alice"}, methodSMS, "+14155550100"},
		{"unknown", principal{firstFactor: "zed", user: "zed"}, methodSMS, ""},
	} {
		if got := u.account(tc.p).destination(ctx, tc.method); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if err := u.update(ctx, "alice", func(rec *userRecord) (storage.Op, error) {
		rec.Email = "new@example.com"
		return storage.Write, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := u.account(principal{firstFactor: "alice", user: "alice"}).destination(ctx, methodEmail); got != "new@example.com" {
		t.Errorf("registered: %q", got)
	}
}

// However many questions a request asks about a user, the record is read
// once.
func TestAccountReadsTheRecordOnce(t *testing.T) {
	s := newServices(t, func(h *Handler) {
		h.Email.Registration = &authenticators.Registration{}
		h.SMS = &sms.Config{}
	})
	ctx := t.Context()
	a := s.h.users.account(principal{firstFactor: "alice", user: "alice"})
	before := s.store.gets.Load()
	if _, err := a.options(ctx, s.h.methods); err != nil {
		t.Fatal(err)
	}
	a.destination(ctx, methodEmail)
	a.destination(ctx, methodSMS)
	if n := s.store.gets.Load() - before; n != 1 {
		t.Fatalf("%d reads of the user record, want 1", n)
	}
	if _, err := a.reload(ctx); err != nil || s.store.gets.Load()-before != 2 {
		t.Fatalf("reload: %v, %d reads", err, s.store.gets.Load()-before)
	}
}

// An administrator's reset removes the factor and reports whether there
// was one.
func TestUsersResetFactor(t *testing.T) {
	s := newServices(t)
	ctx := t.Context()
	u := s.h.users
	u.update(ctx, "alice", func(rec *userRecord) (storage.Op, error) {
		rec.Phone, rec.LastMethod = "+14155550100", methodSMS
		return storage.Write, nil
	})
	if had, err := u.resetFactor(ctx, "alice", methodSMS); !had || err != nil {
		t.Fatalf("reset phone: %v %v", had, err)
	}
	rec, _ := u.load(ctx, "alice")
	if rec.Phone != "" || rec.LastMethod != "" {
		t.Fatalf("after reset: %+v", rec)
	}
	if had, _ := u.resetFactor(ctx, "alice", methodTOTP); had {
		t.Fatal("reset of a missing app reported one")
	}
}
