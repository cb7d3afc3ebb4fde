package caddymfa

import (
	"slices"
	"testing"
	"time"
)

// A session is valid for its first factor and host only, ends when idle
// or old, and can be ended alone or with all of its user's.
func TestSessionsLifecycle(t *testing.T) {
	s := newServices(t)
	ss := s.h.sessions
	ctx := t.Context()
	v, expires, err := ss.create(ctx, "alice", "alice", methodEmail, "app.test")
	if err != nil {
		t.Fatal(err)
	}
	if want := s.clock.now().Add(12 * time.Hour); !expires.Equal(want) {
		t.Fatalf("expires %v, want %v", expires, want)
	}
	for _, tc := range []struct {
		name, ff, host string
		ok             bool
	}{
		{"same", "alice", "app.test", true},
		{"port and case", "alice", "APP.test:8443", true},
		{"other first factor", "bob", "app.test", false},
		{"other host", "alice", "evil.test", false},
	} {
		if _, ok := ss.check(ctx, v, tc.ff, tc.host); ok != tc.ok {
			t.Errorf("%s: valid %v, want %v", tc.name, ok, tc.ok)
		}
	}
	if _, ok := ss.check(ctx, flipLast(v), "alice", "app.test"); ok {
		t.Error("a modified cookie was accepted")
	}

	other, _, _ := ss.create(ctx, "alice", "alice", methodTOTP, "app.test")
	list, err := ss.ofUser(ctx, "alice")
	if err != nil || len(list) != 2 {
		t.Fatalf("ofUser: %d sessions, %v", len(list), err)
	}
	if user, err := ss.end(ctx, v); user != "alice" || err != nil {
		t.Fatalf("end: %q %v", user, err)
	}
	if _, ok := ss.check(ctx, v, "alice", "app.test"); ok {
		t.Error("an ended session is valid")
	}
	if n, err := ss.revokeUser(ctx, "alice"); n != 1 || err != nil {
		t.Fatalf("revokeUser: %d %v", n, err)
	}
	if _, ok := ss.check(ctx, other, "alice", "app.test"); ok {
		t.Error("a revoked session is valid")
	}

	idle, _, _ := ss.create(ctx, "alice", "alice", methodEmail, "app.test")
	s.clock.add(time.Hour)
	if _, ok := ss.check(ctx, idle, "alice", "app.test"); ok {
		t.Error("an idle session is valid")
	}
}

// Every new session has a new ID.
func TestSessionsAreFresh(t *testing.T) {
	s := newServices(t)
	var seen []string
	for range 20 {
		v, _, err := s.h.sessions.create(t.Context(), "", "erin@example.net", methodEmail, "app.test")
		if err != nil {
			t.Fatal(err)
		}
		id, ok := s.h.sessions.idFromCookie(v)
		if !ok || len(id) != sessionIDLen || slices.Contains(seen, id) {
			t.Fatalf("session ID %x: ok %v, repeated %v", id, ok, slices.Contains(seen, id))
		}
		seen = append(seen, id)
	}
}

// SECURITY.md N61: only a session made by a factor, within the window,
// counts as a factor passed; a policy exemption never does, however
// fresh, nor does a method this version does not know.
func TestSessionFactorWithin(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		method string
		age    time.Duration
		want   bool
	}{
		{methodEmail, 5 * time.Minute, true},
		{methodSMS, 14 * time.Minute, true},
		{methodTOTP, 0, true},
		{methodRecovery, time.Minute, true},
		{methodEmail, enrollFreshness, false},
		{skipKnownIP, 0, false},
		{skipKnownCountry, time.Minute, false},
		{skipDevice, 0, false},
		{skipTrustedNetwork, 0, false},
		{skipNever, 0, false},
		{"", 0, false},
		{methodPasskey, 0, true},
		{"webauthn-next", 0, false},
	} {
		s := session{Method: tc.method, Created: now.Add(-tc.age)}
		if got := s.factorWithin(now, enrollFreshness); got != tc.want {
			t.Errorf("%q made %v ago: %v, want %v", tc.method, tc.age, got, tc.want)
		}
	}
}
