package caddymfa

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddymfa/caddy-mfa/authenticators/passkey"
	"github.com/caddymfa/caddy-mfa/internal/webauthntest"
)

const passkeyOrigin = "https://app.test"

func passkeyEnv(t *testing.T, mutate func(h *Handler)) *env {
	t.Helper()
	h, outbox := testConfig(t)
	h.BaseURL = passkeyOrigin
	h.Passkey = &passkey.Config{}
	if mutate != nil {
		mutate(h)
	}
	return newEnv(t, h, outbox)
}

// passkeyGet GETs a passkey endpoint as JSON and decodes the answer.
func (b *browser) passkeyGet(path string) (int, map[string]any) {
	b.e.t.Helper()
	resp := b.do(request{target: "/.mfa" + path, header: http.Header{"Accept": {"application/json"}}})
	return resp.StatusCode, decodeJSON(b.e.t, resp)
}

// passkeyPost posts a JSON body to a passkey endpoint.
func (b *browser) passkeyPost(path, csrf string, body map[string]any) (int, map[string]any) {
	b.e.t.Helper()
	body["csrf_token"] = csrf
	resp := b.do(request{method: http.MethodPost, target: "/.mfa" + path, json: body, header: http.Header{"Accept": {"application/json"}}})
	return resp.StatusCode, decodeJSON(b.e.t, resp)
}

// addPasskey registers a passkey of auth from b's session.
func (b *browser) addPasskey(auth *webauthntest.Authenticator) {
	b.e.t.Helper()
	status, o := b.passkeyGet("/passkey/register")
	if status != http.StatusOK {
		b.e.t.Fatalf("registration options: %d %v", status, o)
	}
	opts, _ := json.Marshal(o["publicKey"])
	resp, _, err := auth.Create(opts, webauthntest.Tweak{})
	if err != nil {
		b.e.t.Fatal(err)
	}
	if status, got := b.passkeyPost("/passkey/register", o["csrf_token"].(string), map[string]any{"name": "Key", "credential": json.RawMessage(resp)}); status != http.StatusOK {
		b.e.t.Fatalf("registration: %d %v", status, got)
	}
}

// SECURITY.md P4, N61: a passkey is added only from a session made by a
// factor in the last 15 minutes; an older session, a session made by a
// policy exemption, or no session at all may not, and neither may they
// rename or remove one.
func TestPasskeyRegistrationGating(t *testing.T) {
	e := passkeyEnv(t, func(h *Handler) { h.Policy = "new_ip" })
	if status, _ := e.browser("alice").passkeyGet("/passkey/register"); status != http.StatusForbidden {
		t.Fatalf("without a session: %d, want 403", status)
	}
	b := e.signInFrom("alice", "198.51.100.1", false)
	if status, got := b.passkeyGet("/passkey/register"); status != http.StatusOK || got["publicKey"] == nil {
		t.Fatalf("fresh session: %d %v", status, got)
	}
	b.addPasskey(webauthntest.New(passkeyOrigin))

	// A session made by a known IP passed no factor.
	known := e.browser("alice")
	if _, method := known.page("198.51.100.1"); method != "known_ip" {
		t.Fatalf("known IP: method %q", method)
	}
	if status, got := known.passkeyGet("/passkey/register"); status != http.StatusForbidden || got["error"] != errCodeNotAllowed {
		t.Fatalf("exempt session: %d %v, want 403 not_allowed", status, got)
	}
	resp := known.do(request{target: "/.mfa/passkey/register", ip: "198.51.100.1", header: http.Header{"Accept": {"text/html"}}})
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(page), "Confirm it") {
		t.Fatalf("exempt session, HTML: %d, want the confirm step:\n%s", resp.StatusCode, page)
	}

	// Sixteen minutes later the emailed code is too old.
	e.clock.add(16 * time.Minute)
	if status, _ := b.passkeyGet("/passkey/register"); status != http.StatusForbidden {
		t.Fatalf("session 16 minutes old: %d, want 403", status)
	}
	rec, err := e.h.users.load(t.Context(), "alice")
	if err != nil || len(rec.Passkeys) != 1 {
		t.Fatalf("record: %v %v", rec.Passkeys, err)
	}
	id := rec.Passkeys[0].info().ID
	if status, _ := b.passkeyPost("/passkey/remove", "whatever", map[string]any{"id": id}); status != http.StatusForbidden {
		t.Fatalf("removing from an old session: %d, want 403", status)
	}
	if rec, _ := e.h.users.load(t.Context(), "alice"); len(rec.Passkeys) != 1 {
		t.Fatal("the passkey was removed from an old session")
	}
}

// SECURITY.md P3: a signature counter that does not go up refuses the
// sign-in and writes an audit line naming the passkey and both counters.
func TestPasskeyCounterBackwardsAudited(t *testing.T) {
	e := passkeyEnv(t, nil)
	core, logs := observer.New(zap.InfoLevel)
	e.h.logger = zap.New(core)
	e.h.wire()
	auth := webauthntest.New(passkeyOrigin)
	e.signIn("alice").addPasskey(auth)

	login := func(tw webauthntest.Tweak) int {
		b := e.browser("alice")
		b.state() // starts the flow
		status, o := b.passkeyGet("/passkey/login")
		if status != http.StatusOK {
			t.Fatalf("login options: %d %v", status, o)
		}
		opts, _ := json.Marshal(o["publicKey"])
		resp, err := auth.Get(opts, tw)
		if err != nil {
			t.Fatal(err)
		}
		status, _ = b.passkeyPost("/passkey/login", o["csrf_token"].(string), map[string]any{"credential": json.RawMessage(resp)})
		return status
	}
	if status := login(webauthntest.Tweak{}); status != http.StatusOK {
		t.Fatalf("first passkey sign-in: %d", status)
	}
	if status := login(webauthntest.Tweak{}); status != http.StatusOK {
		t.Fatalf("second passkey sign-in: %d", status)
	}
	one := uint32(1)
	if status := login(webauthntest.Tweak{Counter: &one}); status != http.StatusUnauthorized {
		t.Fatalf("counter 2 → 1: %d, want 401", status)
	}
	lines := logs.FilterMessage("passkey counter went backwards; sign-in refused").All()
	if len(lines) != 1 {
		t.Fatalf("%d audit lines for the counter, want 1", len(lines))
	}
	f := lines[0].ContextMap()
	if f["user"] != "alice" || f["passkey"] != "Key" || f["stored_counter"] != uint32(2) || f["received_counter"] != uint32(1) {
		t.Errorf("audit line fields %v", f)
	}
	if status := login(webauthntest.Tweak{}); status != http.StatusOK {
		t.Fatalf("a counter above the stored one again: %d", status)
	}
}

// SECURITY.md P1: the relying party comes from base_url; provision
// refuses passkeys without it, and the options name base_url's host
// whatever Host the request carries.
func TestPasskeyRelyingPartyFromBaseURL(t *testing.T) {
	h, outbox := testConfig(t)
	h.Passkey = &passkey.Config{}
	_ = outbox
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := h.Provision(ctx); err == nil || !strings.Contains(err.Error(), "base_url") {
		t.Fatalf("provision without base_url: %v", err)
	}
	_ = h.Cleanup()

	e := passkeyEnv(t, nil)
	b := e.signIn("alice")
	resp := b.do(request{target: "/.mfa/passkey/register", host: "evil.example", header: http.Header{"Accept": {"application/json"}, "X-Forwarded-Host": {"evil.example"}}})
	got := decodeJSON(t, resp)
	if resp.StatusCode == http.StatusOK {
		rp, _ := got["publicKey"].(map[string]any)["rp"].(map[string]any)
		if rp["id"] != "app.test" {
			t.Fatalf("rp %v, want app.test", rp)
		}
	}
	if status, got := b.passkeyGet("/passkey/register"); status != http.StatusOK || got["publicKey"].(map[string]any)["rp"].(map[string]any)["id"] != "app.test" {
		t.Fatalf("options %d %v", status, got)
	}
}

// SECURITY.md P4: with enroll first_login, a user past the first factor
// who has no passkey adds one during sign-in, which signs them in; once
// they have one, a sign-in flow alone adds no other.
func TestPasskeyFirstLogin(t *testing.T) {
	e := passkeyEnv(t, func(h *Handler) { h.Passkey.Enroll = passkey.EnrollFirstLogin })
	auth := webauthntest.New(passkeyOrigin)
	b := e.browser("alice")
	if st := b.state(); st["step"] != stepChoose || st["passkey_page"] != "/.mfa/passkey/register" {
		t.Fatalf("choose step %v, want the passkey page offered", st)
	}
	status, o := b.passkeyGet("/passkey/register")
	if status != http.StatusOK {
		t.Fatalf("first_login options: %d %v", status, o)
	}
	opts, _ := json.Marshal(o["publicKey"])
	resp, _, err := auth.Create(opts, webauthntest.Tweak{})
	if err != nil {
		t.Fatal(err)
	}
	status, got := b.passkeyPost("/passkey/register", o["csrf_token"].(string), map[string]any{"name": "Phone", "credential": json.RawMessage(resp)})
	if status != http.StatusOK || got["step"] != stepDone || got["redirect"] == nil {
		t.Fatalf("first_login registration: %d %v, want done", status, got)
	}
	if _, method := b.page(""); method != methodPasskey {
		t.Fatalf("after the registration the session's method is %q, want passkey", method)
	}
	again := e.browser("alice")
	if st := again.state(); st["step"] != stepChoose || st["passkey_page"] != nil {
		t.Fatalf("choose step of a user with a passkey: %v", st)
	}
	if status, _ := again.passkeyGet("/passkey/register"); status != http.StatusForbidden {
		t.Fatalf("a second passkey from a sign-in flow alone: %d, want 403", status)
	}
}
