package caddymfa

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// Send caps count per window, a refused send counts toward no cap, and
// the cooldown holds a destination for its time.
func TestThrottleSendCaps(t *testing.T) {
	s := newServices(t)
	th := s.h.throttle
	ctx := t.Context()
	lim := &authenticators.Throttle{PerUserPerHour: 3, Cooldown: caddy.Duration(time.Minute)}
	send := func(dest string) error {
		_, err := th.checkSendCaps(ctx, sendCheck{method: methodEmail, lim: lim, ip: "192.0.2.1", userID: "alice", destKey: dest})
		return err
	}
	if err := send("d1"); err != nil {
		t.Fatal(err)
	}
	var te *throttledError
	if err := send("d1"); !errors.As(err, &te) || te.scope != "cooldown" || te.retryAfter != time.Minute {
		t.Fatalf("second send to d1 within the cooldown: %v", err)
	}
	// The refused send was taken back: two more fit in the hour.
	for _, d := range []string{"d2", "d3"} {
		if err := send(d); err != nil {
			t.Fatalf("send to %s: %v", d, err)
		}
	}
	if err := send("d4"); !errors.As(err, &te) || te.scope != "user" {
		t.Fatalf("fourth send of the hour: %v", err)
	}
	s.clock.add(time.Hour)
	if err := send("d4"); err != nil {
		t.Fatalf("next hour: %v", err)
	}
}

// A shown secret stays the same until its first code takes it, is bound
// to its user, and is dropped after too many wrong codes.
func TestPendingApps(t *testing.T) {
	s := newServices(t, func(h *Handler) {
		h.TOTP = &totp.Config{Issuer: "Example"}
		h.TOTP.ApplyDefaults()
	})
	pa := s.h.apps
	ctx := t.Context()
	secret, err := pa.secret(ctx, "f:1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := pa.secret(ctx, "f:1", "alice"); again != secret {
		t.Fatal("a reload showed a new secret")
	}
	if other, _ := pa.secret(ctx, "f:1", "bob"); other == secret {
		t.Fatal("bob was shown alice's secret")
	}
	alice, _ := pa.secret(ctx, "f:2", "alice")
	code := totpref.Code(strings.ReplaceAll(alice, " ", ""), s.clock.now(), 0)
	if _, _, ok, _ := pa.take(ctx, "f:2", "bob", code); ok {
		t.Fatal("bob took alice's secret")
	}
	alice, _ = pa.secret(ctx, "f:2", "alice")
	code = totpref.Code(strings.ReplaceAll(alice, " ", ""), s.clock.now(), 0)
	for range maxEnrollTries - 1 {
		if _, _, ok, _ := pa.take(ctx, "f:2", "alice", wrongCode(code)); ok {
			t.Fatal("a wrong code took the secret")
		}
	}
	sealed, _, ok, err := pa.take(ctx, "f:2", "alice", code)
	if !ok || err != nil || sealed == "" {
		t.Fatalf("the right code: %v %v", ok, err)
	}
	if _, _, ok, _ := pa.take(ctx, "f:2", "alice", code); ok {
		t.Fatal("a secret was taken twice")
	}
}

// An address being registered waits under its slot until dropped.
func TestRegistrations(t *testing.T) {
	s := newServices(t)
	rs := s.h.registrations
	ctx := t.Context()
	slot := challengeSlot{binding: "register\x00session"}
	if _, found, err := rs.get(ctx, slot); found || err != nil {
		t.Fatalf("nothing yet: %v %v", found, err)
	}
	want := pendingRegistration{Realm: "app", User: "alice", Method: methodSMS, Address: "+14155550100", Return: "/x"}
	if err := rs.put(ctx, slot, want); err != nil {
		t.Fatal(err)
	}
	if got, found, err := rs.get(ctx, slot); !found || err != nil || got != want {
		t.Fatalf("get: %+v %v %v", got, found, err)
	}
	if _, found, _ := rs.get(ctx, challengeSlot{binding: "register\x00other"}); found {
		t.Fatal("another session sees the address")
	}
	rs.drop(ctx, slot)
	if _, found, _ := rs.get(ctx, slot); found {
		t.Fatal("dropped, still there")
	}
	s.clock.add(flowTTL)
	rs.put(ctx, slot, want)
	s.clock.add(flowTTL)
	if _, found, _ := rs.get(ctx, slot); found {
		t.Fatal("kept past flowTTL")
	}
}
