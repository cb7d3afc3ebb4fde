package caddymfa

import (
	"context"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// series names one series of a metric: its name and label pairs.
type series struct {
	name   string
	labels map[string]string
}

func (s series) String() string {
	pairs := make([]string, 0, len(s.labels))
	for k, v := range s.labels {
		pairs = append(pairs, k+"="+strconv.Quote(v))
	}
	sort.Strings(pairs)
	return s.name + "{" + strings.Join(pairs, ",") + "}"
}

// value reads a series from g: a counter's value, a histogram's sample
// count; 0 for a series not (yet) there.
func (s series) value(t testing.TB, g prometheus.Gatherer) float64 {
	t.Helper()
	fams, err := g.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != s.name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(s.labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if s.labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestMetricsCountTheFlow runs sign-ins through the handler and reads the
// metrics from the registry Caddy serves on /metrics: two codes sent and
// delivered, a wrong and a right code, a resend within the cooldown, and
// a user locked after three wrong codes.
func TestMetricsCountTheFlow(t *testing.T) {
	h, outbox := testConfig(t)
	h.Email.Throttle = nil // the defaults: a 30s cooldown per address
	h.Lockout = &Lockout{Failures: 2}
	e := newEnv(t, h, outbox)
	reg := e.ctx.GetMetricsRegistry()

	tests := []struct {
		series series
		want   float64
	}{
		{series{"caddy_mfa_challenges_sent_total", map[string]string{"method": "email"}}, 2},
		{series{"caddy_mfa_delivery_attempts_total", map[string]string{"method": "email", "result": "ok"}}, 2},
		{series{"caddy_mfa_delivery_attempts_total", map[string]string{"method": "email", "result": "failed"}}, 0},
		{series{"caddy_mfa_delivery_duration_seconds", map[string]string{"method": "email"}}, 2},
		{series{"caddy_mfa_verifications_total", map[string]string{"method": "email", "result": "success"}}, 1},
		{series{"caddy_mfa_verifications_total", map[string]string{"method": "email", "result": "failure"}}, 4},
		{series{"caddy_mfa_throttled_total", map[string]string{"scope": "cooldown"}}, 1},
		{series{"caddy_mfa_throttled_total", map[string]string{"scope": "user"}}, 0},
		{series{"caddy_mfa_lockouts_total", nil}, 1},
		{series{"caddy_mfa_challenges_skipped_total", map[string]string{"rule": skipNever}}, 0},
	}
	before := make([]float64, len(tests))
	for i, tt := range tests {
		before[i] = tt.series.value(t, reg)
	}

	// alice: one code, a wrong guess, then the right code.
	alice := e.browser("alice")
	if resp := alice.postJSON("/send", map[string]string{"method": "email"}); resp.StatusCode != http.StatusOK {
		t.Fatalf("send: status %d", resp.StatusCode)
	}
	code := e.lastCode()
	if resp := alice.postJSON("/verify", map[string]string{"code": wrongCode(code)}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong code: status %d", resp.StatusCode)
	}
	if resp := alice.postJSON("/verify", map[string]string{"code": code}); resp.StatusCode != http.StatusOK {
		t.Fatalf("right code: status %d", resp.StatusCode)
	}
	// bob: the third wrong code at a code he was sent is over the limit
	// of 2 and locks him (guesses at a code never sent count in no
	// lockout).
	bob := e.browser("bob")
	if resp := bob.postJSON("/send", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("bob's send: status %d", resp.StatusCode)
	}
	// A new code for bob within the cooldown of his address. (A used
	// code ends its cooldown, so a second sign-in of alice's would not
	// do.)
	if resp := bob.postJSON("/resend", nil); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("resend within the cooldown: status %d, want 429", resp.StatusCode)
	}
	for range 3 {
		if resp := bob.postJSON("/verify", map[string]string{"code": "000000"}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("bob's guess: status %d", resp.StatusCode)
		}
	}

	for i, tt := range tests {
		if got := tt.series.value(t, reg) - before[i]; got != tt.want {
			t.Errorf("%s moved by %v, want %v", tt.series, got, tt.want)
		}
	}
}

// TestMetricsCountSkippedChallenges counts requests let through by the
// policy, by rule.
func TestMetricsCountSkippedChallenges(t *testing.T) {
	tests := []struct {
		name string
		set  func(h *Handler)
		rule string
	}{
		{"policy_never", func(h *Handler) { h.Policy = policyNever }, skipNever},
		{"trusted_network", func(h *Handler) { h.TrustedNetworks = []string{"192.0.2.0/24"} }, skipTrustedNetwork},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, outbox := testConfig(t)
			tt.set(h)
			e := newEnv(t, h, outbox)
			s := series{"caddy_mfa_challenges_skipped_total", map[string]string{"rule": tt.rule}}
			before := s.value(t, e.ctx.GetMetricsRegistry())
			for range 2 {
				if resp := e.serve(request{target: "/app", user: "alice", ip: "192.0.2.10"}, nil); resp.StatusCode != http.StatusOK {
					t.Fatalf("status %d, want the upstream", resp.StatusCode)
				}
			}
			if got := s.value(t, e.ctx.GetMetricsRegistry()) - before; got != 2 {
				t.Errorf("%s moved by %v, want 2", s, got)
			}
		})
	}
}

// TestMetricsRegistration provisions handlers the way Caddy does: two in
// one config, then a third in the config of a reload while the first two
// still run. None meets a duplicate collector, and the new registry
// carries on the counts of the old one.
func TestMetricsRegistration(t *testing.T) {
	// The temporary directories are made first, so they are removed
	// after the stores are closed.
	var hs [3]*Handler
	for i := range hs {
		hs[i], _ = testConfig(t)
	}
	provision := func(ctx caddy.Context, h *Handler) {
		t.Helper()
		if err := h.Provision(ctx); err != nil {
			t.Fatalf("provision: %v", err)
		}
		t.Cleanup(func() { _ = h.Cleanup() })
	}
	oldCtx, cancelOld := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancelOld)
	provision(oldCtx, hs[0])
	provision(oldCtx, hs[1]) // a second site with mfa

	lockouts := series{"caddy_mfa_lockouts_total", nil}
	hs[0].metrics.lockout()
	want := lockouts.value(t, oldCtx.GetMetricsRegistry())

	newCtx, cancelNew := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancelNew)
	provision(newCtx, hs[2])
	if got := lockouts.value(t, newCtx.GetMetricsRegistry()); got != want || got < 1 {
		t.Errorf("lockouts after the reload: %v, want %v as before it", got, want)
	}
}

// TestMetricsConflictIsAnError: a different collector under one of our
// names fails the registration instead of being silently shadowed.
func TestMetricsConflictIsAnError(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	if err := processMetrics.register(reg); err != nil {
		t.Fatalf("first registration: %v", err)
	}
	if err := processMetrics.register(reg); err != nil {
		t.Fatalf("registering the same collectors again: %v", err)
	}
	err := newMetricSet().register(reg)
	if err == nil || !strings.Contains(err.Error(), "registering metrics") {
		t.Fatalf("a second set under the same names: %v, want a registration error", err)
	}
}
