package caddymfa

import (
	"net/url"
	"strings"
	"testing"
)

// SECURITY.md F32.
func TestSafeReturnPathRejectsOtherOrigins(t *testing.T) {
	for _, bad := range []string{
		"https://evil.com", "//evil.com", `/\evil.com`, `\/evil.com`, "https:evil.com",
		"/%2F%2Fevil.com", "/%2f/evil.com", "%09//evil.com", "/\t/evil.com", "javascript:alert(1)",
		"data:text/html,x", "https://app.test@evil.com", "https://app.test.evil.com", "",
		"evil.com", "/%5Cevil.com", "/\x00", "/ok\r\nLocation: x", "/.mfa/", "/.mfa",
		"/" + strings.Repeat("a", 3000), "/é",
	} {
		if got, ok := safeReturnPath(bad, "/.mfa"); ok {
			t.Errorf("safeReturnPath(%q) = %q, accepted", bad, got)
		}
	}
	for _, good := range []string{"/", "/app", "/app?x=1&y=%2F", "/a/b#frag", "/.mfa-other", "/%E2%82%AC"} {
		if got, ok := safeReturnPath(good, "/.mfa"); !ok || got != good {
			t.Errorf("safeReturnPath(%q) = %q, %v", good, got, ok)
		}
	}
}

func FuzzSafeReturnPath(f *testing.F) {
	for _, s := range []string{"/", "//evil.com", `/\x`, "/%2F%2Fx", "https://x", "/a?b#c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, ok := safeReturnPath(raw, "/.mfa")
		if !ok {
			return
		}
		// Whatever is accepted must resolve to our own origin.
		base, _ := url.Parse("https://app.test/")
		ref, err := url.Parse(got)
		if err != nil {
			t.Fatalf("accepted unparsable %q", got)
		}
		if u := base.ResolveReference(ref); u.Host != "app.test" || u.Scheme != "https" {
			t.Fatalf("accepted %q resolving to %s", got, u)
		}
		if strings.HasPrefix(got, "//") || strings.ContainsAny(got, "\\\t\r\n") {
			t.Fatalf("accepted %q", got)
		}
	})
}

func FuzzDecodeSigned(f *testing.F) {
	key := newMACPool([]byte(strings.Repeat("k", 32)))
	f.Add(signValue(key, "flow", `{"id":"x"}`))
	f.Add("a.b")
	f.Add("")
	f.Fuzz(func(t *testing.T, v string) {
		payload, ok := decodeSigned(key, "flow", v)
		if ok && signValue(key, "flow", payload) != v {
			// Only our own encoding of a payload may verify.
			if _, ok2 := decodeSigned(key, "flow", signValue(key, "flow", payload)); !ok2 {
				t.Fatalf("round trip of %q failed", payload)
			}
		}
		if _, ok := decodeSigned(key, "session", v); ok && v != "" && strings.Contains(v, ".") && ok {
			if _, okFlow := decodeSigned(key, "flow", v); okFlow {
				t.Fatalf("value verifies for two purposes: %q", v)
			}
		}
	})
}

func FuzzSessionCookie(f *testing.F) {
	ss := &sessions{realm: newRealm("app", ""), keys: newKeyring([]byte(strings.Repeat("s", 32)))}
	f.Add(ss.cookieValue([]byte(strings.Repeat("i", sessionIDLen))))
	f.Add("")
	f.Add("%%%")
	f.Fuzz(func(t *testing.T, v string) {
		id, ok := ss.idFromCookie(v)
		if ok && ss.cookieValue([]byte(id)) != v {
			t.Fatalf("accepted a non-canonical cookie %q", v)
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte(`{"u":"alice","m":"email","a":1,"st":"pending"}`))
	f.Add([]byte(`{"f":3}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"totp":{"s":"sealed","ls":123,"a":"2026-01-01T00:00:00Z"},"rc":["AAAA"],"lm":"totp"}`))
	f.Add([]byte(`{"u":"alice","s":"sealed","n":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = decodeRecord[challenge](data)
		_, _ = decodeRecord[session](data)
		_, _ = decodeRecord[lockRecord](data)
		_, _ = decodeRecord[userRecord](data)
		_, _ = decodeRecord[pendingEnrollment](data)
	})
}

func FuzzCanonicalUser(f *testing.F) {
	for _, s := range []string{"alice", " Alice ", "ａｌｉｃｅ", "a/b", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		c, ok := canonicalUser(name)
		if !ok {
			return
		}
		again, ok := canonicalUser(c)
		if !ok || again != c {
			t.Fatalf("canonicalUser is not idempotent: %q -> %q -> %q", name, c, again)
		}
		if strings.Contains(c, "/") {
			t.Fatalf("canonical name %q holds a key separator", c)
		}
	})
}
