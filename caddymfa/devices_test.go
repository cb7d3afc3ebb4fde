package caddymfa

import (
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// A remembered device is bound to its user, expires, and is forgotten
// alone or with all of its user's.
func TestDevices(t *testing.T) {
	s := newServices(t, func(h *Handler) { h.RememberDevice = caddy.Duration(24 * time.Hour) })
	d := s.h.devices
	ctx := t.Context()
	token, expires, err := d.remember(ctx, "alice", "alice")
	if err != nil || !expires.Equal(s.clock.now().Add(24*time.Hour)) {
		t.Fatalf("remember: %v, expires %v", err, expires)
	}
	if ok, _ := d.remembered(ctx, token, "alice"); !ok {
		t.Fatal("not remembered")
	}
	if ok, _ := d.remembered(ctx, token, "bob"); ok {
		t.Fatal("alice's device remembered for bob")
	}
	if ok, _ := d.remembered(ctx, token+"x", "alice"); ok {
		t.Fatal("an unknown token remembered")
	}
	second, _, _ := d.remember(ctx, "alice", "alice")
	if n, _ := d.count(ctx, "alice"); n != 2 {
		t.Fatalf("count %d, want 2", n)
	}
	if err := d.forget(ctx, token); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.remembered(ctx, token, "alice"); ok {
		t.Fatal("a forgotten device is remembered")
	}
	if err := d.forgetUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := d.remembered(ctx, second, "alice"); ok {
		t.Fatal("forgetUser left a device")
	}
	if n, _ := d.count(ctx, "alice"); n != 0 {
		t.Fatalf("count %d after forgetUser", n)
	}

	old, _, _ := d.remember(ctx, "alice", "alice")
	s.clock.add(24 * time.Hour)
	if ok, _ := d.remembered(ctx, old, "alice"); ok {
		t.Fatal("an expired device is remembered")
	}
}
