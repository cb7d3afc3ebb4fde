package caddymfa

import (
	"math"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// SECURITY.md F32, K49: with cookie_domain a sign-in may return to another
// host of the realm, and to nothing else.
func TestRealmSafeReturn(t *testing.T) {
	sso := newRealm("corp", "example.com")
	host := newRealm("corp", "")
	for _, tc := range []struct {
		in       string
		sso, own bool
	}{
		{"/app?x=1", true, true},
		{"https://wiki.example.com/page?a=1#top", true, false},
		{"http://example.com/", true, false},
		{"https://WIKI.Example.com:8443/x", true, false},
		{"https://evil.com/", false, false},
		{"https://example.com.evil.com/", false, false},
		{"https://wiki.example.com@evil.com/", false, false},
		{"https://user@wiki.example.com/", false, false},
		{"https://notexample.com/", false, false},
		{"//wiki.example.com/x", false, false},
		{"https://wiki.example.com\\@evil.com/", false, false},
		{"https://wiki.example.com/\\evil.com", false, false},
		{"https://wiki.example.com//evil.com", false, false},
		{"https://wiki.example.com./x", false, false},
		{"https://wiki.example.com:x/", false, false},
		{"https:wiki.example.com", false, false},
		{"javascript:alert(1)", false, false},
		{"ftp://wiki.example.com/", false, false},
		{"https://wiki.example.com\t/x", false, false},
		{"", false, false},
	} {
		if _, ok := sso.safeReturn(tc.in, "/.mfa"); ok != tc.sso {
			t.Errorf("with cookie_domain: %q accepted %v, want %v", tc.in, ok, tc.sso)
		}
		if _, ok := host.safeReturn(tc.in, "/.mfa"); ok != tc.own {
			t.Errorf("host-only: %q accepted %v, want %v", tc.in, ok, tc.own)
		}
	}
}

func FuzzRealmReturn(f *testing.F) {
	rm := newRealm("corp", "example.com")
	for _, s := range []string{"/a", "https://wiki.example.com/x", "https://evil.com", "https://a.example.com@evil.com", "http://example.com:80/%2F%2Fx", "https://x.example.com./"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := rm.safeReturn(raw, "/.mfa")
		if !ok {
			return
		}
		if strings.HasPrefix(got, "/") {
			if _, ok := safeReturnPath(got, "/.mfa"); !ok {
				t.Fatalf("accepted %q as %q, which is no safe path", raw, got)
			}
			return
		}
		u, err := url.Parse(got)
		if err != nil || u.User != nil || (u.Scheme != "https" && u.Scheme != "http") || !underDomain(u.Hostname(), "example.com") {
			t.Fatalf("accepted %q as %q, outside the realm's domain", raw, got)
		}
	})
}

func FuzzCookieDomain(f *testing.F) {
	for _, s := range []string{"example.com", ".example.com", "co.uk", "com", "EXAMPLE.com", "a b", "example.com."} {
		f.Add(s, "app.example.com")
	}
	f.Fuzz(func(t *testing.T, domain, host string) {
		d, err := checkCookieDomain(domain, []string{host})
		if err != nil {
			return
		}
		h := strings.ToLower(strings.TrimPrefix(host, "*."))
		if h != "" && h != "*" && !underDomain(h, d) {
			t.Fatalf("cookie_domain %q (%q) accepted for host %q", domain, d, host)
		}
		if d != strings.ToLower(d) || strings.HasPrefix(d, ".") || !strings.Contains(d, ".") {
			t.Fatalf("cookie_domain %q normalised to %q", domain, d)
		}
	})
}

// Cookie names differ per realm, so handlers of two realms on one host
// keep their sessions side by side; the session cookie with cookie_domain
// takes __Secure-, the others __Host- (SECURITY.md E26, K49).
func TestRealmCookieNames(t *testing.T) {
	a, b := newRealm("a", ""), newRealm("b", "example.com")
	for k := range cookieKinds {
		if a.plain[k] == b.plain[k] {
			t.Errorf("realms a and b share the cookie name %q", a.plain[k])
		}
		if newRealm("a", "").plain[k] != a.plain[k] {
			t.Error("a realm's cookie names are not stable")
		}
	}
	if !strings.HasPrefix(b.secure[cookieSession], "__Secure-mfa_session-") || !strings.HasPrefix(b.secure[cookieFlow], "__Host-mfa_flow-") {
		t.Errorf("prefixes: %v", b.secure)
	}
}

// SECURITY.md K50: the gate admits the users the config admits, and a
// session only with a fresh enough verification of an accepted method;
// an exemption is no verification (N61).
func TestGate(t *testing.T) {
	dir, err := newDirectory([]UserEntry{{Name: "alice", Email: "alice@example.com"}, {Name: "dave", Disabled: true}}, "", []string{"*@example.net"}, false)
	if err != nil {
		t.Fatal(err)
	}
	standalone := &gate{dir: dir, standalone: true}
	second := &gate{dir: dir}
	for _, tc := range []struct {
		g    *gate
		s    session
		want bool
	}{
		{standalone, session{User: "alice"}, true},
		{standalone, session{User: "dave"}, false},
		{standalone, session{User: "erin@example.net"}, true},
		{standalone, session{User: "erin@example.org"}, false},
		{standalone, session{User: "bob"}, false},
		{second, session{FirstFactor: "bob", User: "bob"}, true},
		{second, session{FirstFactor: "dave", User: "dave"}, false},
	} {
		if got := tc.g.admits(&tc.s); got != tc.want {
			t.Errorf("admits %+v: %v, want %v", tc.s, got, tc.want)
		}
	}

	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	totpOnly := &gate{dir: dir, methods: []string{methodTOTP}, maxAge: 10 * time.Minute}
	anyFresh := &gate{dir: dir, maxAge: time.Hour}
	for _, tc := range []struct {
		name string
		g    *gate
		v    map[string]time.Time
		want int64
	}{
		{"no gate", second, nil, math.MaxInt64},
		{"email session, totp wanted", totpOnly, map[string]time.Time{methodEmail: t0}, 0},
		{"totp verified", totpOnly, map[string]time.Time{methodEmail: t0, methodTOTP: t0.Add(time.Minute)}, t0.Add(11 * time.Minute).UnixNano()},
		{"exemption only", anyFresh, map[string]time.Time{skipDevice: t0}, 0},
		{"latest factor counts", anyFresh, map[string]time.Time{methodEmail: t0, methodSMS: t0.Add(time.Minute)}, t0.Add(61 * time.Minute).UnixNano()},
		{"methods without max_age", &gate{dir: dir, methods: []string{methodTOTP}}, map[string]time.Time{methodTOTP: t0}, math.MaxInt64},
	} {
		if got := tc.g.goodUntil(&session{Verified: tc.v}); got != tc.want {
			t.Errorf("%s: good until %d, want %d", tc.name, got, tc.want)
		}
	}

	// A step-up keeps the times of the session it replaces.
	prev := &session{FirstFactor: "alice", User: "alice", Verified: map[string]time.Time{methodEmail: t0}}
	v := verifiedAfter(prev, "alice", "alice", methodTOTP, t0.Add(time.Hour))
	if !v[methodEmail].Equal(t0) || !v[methodTOTP].Equal(t0.Add(time.Hour)) || len(v) != 2 {
		t.Errorf("after a step-up: %v", v)
	}
	if v := verifiedAfter(prev, "bob", "bob", skipDevice, t0); v != nil {
		t.Errorf("another user's times, or an exemption's, carried over: %v", v)
	}
}

// SECURITY.md K49, at the level of the state services: over one store
// and one key, each kind of record made in realm "app" is absent, or
// refused, in realm "other".
func TestRealmBindsRecords(t *testing.T) {
	s := newServices(t, func(h *Handler) { h.RememberDevice = caddy.Duration(24 * time.Hour) })
	ctx := t.Context()
	h := s.h
	other := newRealm("other", "")

	// Sessions: another realm's cookie tag, and A's ID signed for B.
	v, _, err := h.sessions.create(ctx, "alice", "alice", methodEmail, "app.test")
	if err != nil {
		t.Fatal(err)
	}
	ssB := *h.sessions
	ssB.realm, ssB.cache = other, newSessionCache(10)
	if _, ok := ssB.check(ctx, v, "alice", "app.test"); ok {
		t.Error("realm other accepted a session cookie of realm app")
	}
	id, _ := h.sessions.idFromCookie(v)
	if _, ok := ssB.check(ctx, ssB.cookieValue([]byte(id)), "alice", "app.test"); ok {
		t.Error("realm other accepted realm app's session signed for it")
	}
	if _, ok := h.sessions.check(ctx, v, "alice", "app.test"); !ok {
		t.Error("realm app refused its own session")
	}

	// Remembered devices.
	token, _, err := h.devices.remember(ctx, "alice", "alice")
	if err != nil {
		t.Fatal(err)
	}
	dB := *h.devices
	dB.realm = other
	if ok, _ := dB.remembered(ctx, token, "alice"); ok {
		t.Error("realm other recognised a device remembered in realm app")
	}
	if ok, _ := h.devices.remembered(ctx, token, "alice"); !ok {
		t.Error("realm app forgot its own device")
	}

	// Challenges and the links that name them: neither read nor counted.
	cid := h.challenges.id(challengeSlot{binding: "flow-1"})
	rec, _ := encodeRecord(challenge{Realm: "app", User: "alice", Method: methodEmail, LinkMAC: h.keys.linkMAC(cid, "tok"), State: statePending, ExpiresAt: s.clock.now().Add(time.Minute)})
	if err := s.store.Put(ctx, keyChallenge+cid, rec, s.clock.now().Add(time.Hour), false); err != nil {
		t.Fatal(err)
	}
	cB := *h.challenges
	cB.realm = other
	if ch, err := cB.load(ctx, cid); ch != nil || err != nil {
		t.Errorf("realm other loaded realm app's challenge: %v %v", ch, err)
	}
	if cB.id(challengeSlot{binding: "flow-1"}) == cid {
		t.Error("one binding names the same challenge in two realms")
	}
	if ok, _ := cB.verifyLink(ctx, cid, "alice", "tok", 0, h.methods.limitsFor(methodEmail), true, false); ok {
		t.Error("realm other confirmed realm app's link")
	}
	if ch, _ := h.challenges.load(ctx, cid); ch == nil || ch.Attempts != 0 || ch.State != statePending {
		t.Errorf("realm other's attempt touched the challenge: %+v", ch)
	}

	// Pending enrollments and registrations.
	rs := *h.registrations
	rs.realm = other
	slot := challengeSlot{binding: "register\x00s1"}
	if err := h.registrations.put(ctx, slot, pendingRegistration{User: "alice", Method: methodSMS, Address: "+14155550100"}); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := rs.get(ctx, slot); found {
		t.Error("realm other sees the address realm app is registering")
	}
	secret, err := h.apps.secret(ctx, "s:1", "alice")
	if err != nil {
		t.Fatal(err)
	}
	apps := *h.apps
	apps.realm = other
	if again, err := apps.secret(ctx, "s:1", "alice"); err != nil || again == secret {
		t.Errorf("realm other was shown realm app's pending secret: %v", err)
	}
}
