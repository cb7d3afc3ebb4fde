package caddymfa

import (
	"math"
	"net/url"
	"strings"
	"testing"
	"time"
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
