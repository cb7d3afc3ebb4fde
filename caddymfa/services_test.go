package caddymfa

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/email"
)

// services are the state services wired as Provision wires them, over a
// store in memory and a test clock, for their unit tests.
type services struct {
	h     *Handler
	store *memStore
	clock *testClock
}

func newServices(t *testing.T, modify ...func(*Handler)) *services {
	t.Helper()
	clock := &testClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	store := newMemStore(clock.now)
	dir, err := newDirectory([]UserEntry{
		{Name: "alice", Email: "alice@example.com", Phone: "+14155550100"},
		{Name: "dave", Email: "dave@example.com", Disabled: true},
	}, "", []string{"*@example.net"}, false)
	if err != nil {
		t.Fatal(err)
	}
	h := &Handler{
		Lockout:     &Lockout{Failures: 3, Window: caddy.Duration(15 * time.Minute)},
		SessionTTL:  caddy.Duration(12 * time.Hour),
		IdleTimeout: caddy.Duration(time.Hour),
		Email: &email.Config{Limits: authenticators.Limits{
			CodeLength: 6, CodeTTL: caddy.Duration(10 * time.Minute), MaxAttempts: 3, MaxSends: 3,
			Throttle: &authenticators.Throttle{},
		}},
	}
	for _, m := range modify {
		m(h)
	}
	h.handlerState = handlerState{
		logger:  zap.NewNop(),
		now:     clock.now,
		store:   store,
		keys:    newKeyring([]byte(strings.Repeat("k", 40))),
		dir:     dir,
		pending: new(sync.WaitGroup),
		policy:  &policy{name: policyAlways},
		realm:   newRealm("app", ""),
	}
	h.gate = &gate{dir: dir, standalone: h.standalone()}
	h.baseURL, _ = url.Parse("https://mfa.example.com")
	h.methods = newMethods(h.Email, h.SMS, h.TOTP, h.baseURL, "/.mfa")
	h.wire()
	return &services{h: h, store: store, clock: clock}
}

// fakeSender records the messages it is given.
type fakeSender struct {
	mu   sync.Mutex
	msgs []authenticators.Message
	err  error
}

func (f *fakeSender) Method() string        { return methodEmail }
func (f *fakeSender) Mask(to string) string { return email.Mask(to) }
func (f *fakeSender) Deliver(_ context.Context, m authenticators.Message) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.msgs = append(f.msgs, m)
	return f.err
}

func (f *fakeSender) last(t *testing.T) authenticators.Message {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.msgs) == 0 {
		t.Fatal("nothing delivered")
	}
	return f.msgs[len(f.msgs)-1]
}

// issue sends a code (or a link, with linkTTL) to alice for slot.
func (s *services) issue(t *testing.T, f *fakeSender, slot challengeSlot, linkTTL time.Duration) authenticators.Message {
	t.Helper()
	_, err := s.h.challenges.issue(t.Context(), sendRequest{slot: slot, user: "alice", sender: f, limits: s.h.Email.Limits,
		ip: "192.0.2.1", dest: "alice@example.com", wait: true, linkTTL: linkTTL})
	if err != nil {
		t.Fatalf("issue: %v", err)
	}
	return f.last(t)
}

// The policy's rules, as services see them: a client address and a
// device token, no request.
func TestPolicySkip(t *testing.T) {
	s := newServices(t, func(h *Handler) { h.RememberDevice = caddy.Duration(time.Hour) })
	ctx := t.Context()
	pol, err := newPolicy(policyNewIP, []string{"10.0.0.0/8"}, "")
	if err != nil {
		t.Fatal(err)
	}
	pol.wire(s.h.devices, s.h.users, s.clock.now, zap.NewNop(), s.h.audit)
	token, _, _ := s.h.devices.remember(ctx, "alice", "alice")
	if err := pol.recordPlace(ctx, "alice", "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, ff, ip, device, want string
	}{
		{"standalone", "", "10.1.2.3", "", ""},
		{"trusted network", "bob", "10.1.2.3", "", skipTrustedNetwork},
		{"remembered device", "alice", "198.51.100.1", token, skipDevice},
		{"device of another user", "bob", "198.51.100.1", token, ""},
		{"known ip", "alice", "192.0.2.7", "", skipKnownIP},
		{"new ip", "alice", "192.0.2.8", "", ""},
	} {
		rule, ok := pol.skip(ctx, tc.ff, tc.ip, tc.device)
		if rule != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: %q %v, want %q", tc.name, rule, ok, tc.want)
		}
	}
}
