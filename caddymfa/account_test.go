package caddymfa

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddymfa/caddy-mfa/internal/geoiptest"
)

// A user's session index is one capped record: every sign-in writes the
// session and updates the index in one store operation, and nothing lists the store, however
// many sessions came before; past the cap the oldest sessions end (they
// could not be ended otherwise), expired entries leave with the next
// write, and revoking ends every indexed session (issue 15: no cost that
// grows with the store).
func TestSessionIndexBounded(t *testing.T) {
	s := newServices(t)
	counting := newCountingStore(s.store)
	s.h.store = counting
	s.h.wire()
	ss := s.h.sessions
	ctx := t.Context()

	var cookies []string
	for i := range maxUserSessions + 10 {
		v, _, err := ss.create(ctx, "alice", "alice", methodEmail, "app.test")
		if err != nil {
			t.Fatal(err)
		}
		cookies = append(cookies, v)
		ops, listed := counting.take()
		if ops["list"] != 0 || ops["delete_prefix"] != 0 || listed != 0 || ops["update_many"] != 1 || ops["put"]+ops["update"] != 0 {
			t.Fatalf("sign-in %d: store operations %v (records listed %d), want one update of the session and the index", i+1, ops, listed)
		}
	}
	list, err := ss.ofUser(ctx, "alice")
	if err != nil || len(list) != maxUserSessions {
		t.Fatalf("ofUser: %d sessions, %v; want %d", len(list), err, maxUserSessions)
	}
	for i, v := range cookies {
		_, ok := ss.check(ctx, v, "alice", "app.test")
		if want := i >= 10; ok != want {
			t.Errorf("session %d: valid %v, want %v", i+1, ok, want)
		}
	}
	idx, err := ss.index.entries(ctx, "alice")
	if err != nil || len(idx) != maxUserSessions {
		t.Fatalf("index: %d entries, %v", len(idx), err)
	}

	// Expired entries leave with the next write.
	s.clock.add(13 * time.Hour)
	if _, _, err := ss.create(ctx, "alice", "alice", methodEmail, "app.test"); err != nil {
		t.Fatal(err)
	}
	rec, err := s.store.Get(ctx, keySessionIndex+"alice")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := decodeIndex(rec.Value); err != nil || len(got) != 1 {
		t.Fatalf("the index after every session expired and one more sign-in: %d entries (%v), want 1", len(got), err)
	}
	if n, err := ss.revokeUser(ctx, "alice"); n != 1 || err != nil {
		t.Fatalf("revokeUser: %d, %v", n, err)
	}
	if _, err := s.store.Get(ctx, keySessionIndex+"alice"); err == nil {
		t.Error("revokeUser left the index")
	}
}

// Sessions written by an earlier version, indexed one key each under
// usess/<user>/, still end when the user's sessions are revoked.
func TestRevokeEndsLegacyIndexedSessions(t *testing.T) {
	s := newServices(t)
	ss := s.h.sessions
	ctx := t.Context()
	v, _, err := ss.create(ctx, "alice", "alice", methodEmail, "app.test")
	if err != nil {
		t.Fatal(err)
	}
	// Move the session to the old index.
	id, _ := ss.idFromCookie(v)
	storeID := s.h.keys.storeID(id)
	if _, err := ss.index.take(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.store.Put(ctx, keyUserSess+"alice/"+storeID, nil, s.clock.now().Add(time.Hour), false); err != nil {
		t.Fatal(err)
	}
	if n, err := ss.revokeUser(ctx, "alice"); n != 1 || err != nil {
		t.Fatalf("revokeUser: %d, %v", n, err)
	}
	if _, ok := ss.check(ctx, v, "alice", "app.test"); ok {
		t.Error("a session of the old index survived revokeUser")
	}
}

// Remembered devices have the same capped index.
func TestDeviceIndexBounded(t *testing.T) {
	s := newServices(t, func(h *Handler) { h.RememberDevice = 30 * 24 * 60 * 60 * 1e9 })
	d := s.h.devices
	ctx := t.Context()
	var tokens []string
	for range maxUserDevices + 3 {
		token, _, err := d.remember(ctx, "alice", "alice")
		if err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, token)
	}
	if n, _ := d.count(ctx, "alice"); n != maxUserDevices {
		t.Fatalf("count %d, want %d", n, maxUserDevices)
	}
	for i, token := range tokens {
		ok, _ := d.remembered(ctx, token, "alice")
		if want := i >= 3; ok != want {
			t.Errorf("device %d: remembered %v, want %v", i+1, ok, want)
		}
	}
}

// A protected request moves a session's last-seen time in memory; the
// store hears of it at most every idle/8, so a busy browser costs no
// write per request.
func TestLastSeenWrittenRarely(t *testing.T) {
	s := newServices(t)
	counting := newCountingStore(s.store)
	s.h.store = counting
	s.h.wire()
	ss := s.h.sessions
	ctx := t.Context()
	v, _, err := ss.create(ctx, "alice", "alice", methodEmail, "app.test")
	if err != nil {
		t.Fatal(err)
	}
	counting.take()
	// Ten requests a second for ten minutes.
	for range 6000 {
		s.clock.add(100 * time.Millisecond)
		if _, ok := ss.check(ctx, v, "alice", "app.test"); !ok {
			t.Fatal("the session ended")
		}
	}
	ops, _ := counting.take()
	if ops["update"] > 2 || ops["put"] > 0 {
		t.Errorf("10 minutes of requests wrote the store %d times (%v), want at most twice (every idle/8 = 7.5 minutes)", ops["update"]+ops["put"], ops)
	}
	list, err := ss.ofUser(ctx, "alice")
	if err != nil || len(list) != 1 {
		t.Fatalf("ofUser: %v, %v", list, err)
	}
	if seen := s.clock.now().Sub(list[0].LastSeen); seen > 8*time.Minute {
		t.Errorf("the stored last-seen time is %v old, want within idle/8", seen)
	}
}

func TestDescribeUserAgent(t *testing.T) {
	for _, tc := range []struct{ ua, browser, system string }{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", "Firefox", "Windows"},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome", "macOS"},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", "Edge", "Windows"},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", "Safari", "iOS"},
		{"Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", "Samsung Internet", "Android"},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", "Chrome", "Linux"},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", "Chrome", "ChromeOS"},
		{"curl/8.11.0", "curl", ""},
		{"", "", ""},
		{"<script>alert(1)</script>", "", ""},
	} {
		b, s := describeUserAgent(tc.ua)
		if b != tc.browser || s != tc.system {
			t.Errorf("%q: %q on %q, want %q on %q", tc.ua, b, s, tc.browser, tc.system)
		}
	}
	if got := deviceName("Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"); got != "Firefox on Linux" {
		t.Errorf("deviceName = %q", got)
	}
}

// The User-Agent is written by the client: any value is described
// without failing, only in names from the tables.
func FuzzDescribeUserAgent(f *testing.F) {
	for _, seed := range []string{"", "Firefox/", "Mozilla/5.0 (iPhone) Version/1 Safari/1", "\x00\xff", strings.Repeat("Chrome/", 100)} {
		f.Add(seed)
	}
	known := map[string]bool{"": true, "Safari": true}
	for _, b := range uaBrowsers {
		known[b.name] = true
	}
	for _, s := range uaSystems {
		known[s.name] = true
	}
	f.Fuzz(func(t *testing.T, ua string) {
		b, s := describeUserAgent(ua)
		if !known[b] || !known[s] {
			t.Fatalf("%q: %q on %q is not a known name", ua, b, s)
		}
		if deviceName(ua) == "" {
			t.Fatal("empty device name")
		}
	})
}

// The index record decoder refuses what it cannot read whole, and what it
// reads it writes back the same (SECURITY.md J42).
func FuzzDecodeIndex(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{indexVersion})
	f.Add(encodeIndex([]rawEntry{{id: [indexIDLen]byte{1, 2, 3}, exp: 1 << 40}, {exp: -1}}))
	f.Add(append(encodeIndex([]rawEntry{{}}), 0))
	f.Add([]byte(`{"s":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		es, err := decodeIndex(b)
		if err != nil {
			return
		}
		if again := encodeIndex(es); string(again) != string(b) {
			t.Fatalf("decoded %x, encoded again %x", b, again)
		}
		for _, e := range es {
			if raw, ok := rawID(e.entry().ID); !ok || raw != e.id {
				t.Fatalf("store ID %x does not round-trip", e.id)
			}
		}
	})
}

// A handle is 16 lower-case hex characters; anything else is refused
// before any lookup (SECURITY.md N64).
func FuzzValidHandle(f *testing.F) {
	for _, seed := range []string{"0123456789abcdef", "0123456789ABCDEF", "", "0123", "0123456789abcdeg", "0123456789abcdef0"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if validHandle(s) != (len(s) == handleLen && strings.Trim(s, "0123456789abcdef") == "") {
			t.Fatalf("validHandle(%q) = %v", s, validHandle(s))
		}
	})
}

// The account page through the handler: a session whose factor is older
// than accountFreshness may look but not end sessions without a code,
// and is offered to confirm again; a fresh one may. The page never shows
// a cookie value.
func TestAccountNeedsRecentFactor(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	a := e.signIn("alice")
	b := e.signIn("alice")

	page := func(br *browser) map[string]any {
		t.Helper()
		resp := br.do(request{target: "/.mfa/account", header: http.Header{"Accept": {"application/json"}}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("account page: status %d", resp.StatusCode)
		}
		return decodeJSON(t, resp)
	}
	end := func(br *browser, csrf, id string) *http.Response {
		return br.do(request{method: http.MethodPost, target: "/.mfa/account", json: map[string]string{"action": "end_session", "id": id, "csrf_token": csrf}})
	}
	v := page(a)
	sessions := v["sessions"].([]any)
	if len(sessions) != 2 || v["fresh"] != true {
		t.Fatalf("account page: %v", v)
	}
	var other string
	for _, s := range sessions {
		if m := s.(map[string]any); m["current"] != true {
			other = m["id"].(string)
		}
	}

	e.clock.add(accountFreshness + time.Minute)
	v = page(a)
	if v["fresh"] != false || v["confirm"] != "/.mfa/account/confirm" {
		t.Fatalf("an older session's page: fresh %v, confirm %v", v["fresh"], v["confirm"])
	}
	resp := end(a, v["csrf_token"].(string), other)
	if got := decodeJSON(t, resp); resp.StatusCode != http.StatusForbidden || got["error"] != errCodeReauth {
		t.Fatalf("ending a session from an older one: status %d, %v", resp.StatusCode, got)
	}
	if _, ok := e.h.sessions.check(t.Context(), cookieOf(t, b), "alice", "app.test"); !ok {
		t.Fatal("a refused request ended the session")
	}

	// Passing a factor again makes the browser fresh.
	fresh := e.signIn("alice")
	v = page(fresh)
	if resp := end(fresh, v["csrf_token"].(string), other); resp.StatusCode != http.StatusOK {
		t.Fatalf("ending a session from a fresh one: status %d, %v", resp.StatusCode, decodeJSON(t, resp))
	}
	if _, ok := e.h.sessions.check(t.Context(), cookieOf(t, b), "alice", "app.test"); ok {
		t.Fatal("the ended session is valid")
	}
}

// cookieOf is the session cookie value in a browser's jar.
func cookieOf(t *testing.T, b *browser) string {
	t.Helper()
	r, _ := http.NewRequest(http.MethodGet, "http://app.test/", nil)
	for _, c := range b.jar.Cookies(r.URL) {
		if c.Name == b.e.h.realm.plain[cookieSession] {
			return c.Value
		}
	}
	t.Fatal("no session cookie")
	return ""
}

// BenchmarkSessionIndexAdd measures what a sign-in adds to keep the
// user's session index: one read-modify-write of a full index (the cap
// reached, the oldest entry evicted).
func BenchmarkSessionIndexAdd(b *testing.B) {
	clock := &testClock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	ix := &userIndex{store: newMemStore(clock.now), prefix: keySessionIndex, max: maxUserSessions, now: clock.now}
	ctx := b.Context()
	exp := clock.now().Add(time.Hour)
	ids := make([]string, 1024)
	for i := range ids {
		ids[i] = fmt.Sprintf("%040x", i)
	}
	for _, id := range ids[:maxUserSessions] {
		if _, err := ix.add(ctx, "alice", id, exp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := ix.add(ctx, "alice", ids[i%len(ids)], exp); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// In standalone mode the account page shows the session's country
// (geoip_db) and address, and "confirm it's you" signs the named user in
// again, with no name typed, back to the page, fresh.
func TestAccountStandaloneConfirm(t *testing.T) {
	h, outbox := testConfig(t)
	h.User = new(string)
	h.GeoIPDB = geoiptest.CountryDB(t, map[string]string{"198.51.100.0/24": "SE"})
	e := newEnv(t, h, outbox)
	b := e.identifyFrom("alice", "198.51.100.7", 1)
	if resp := b.postJSON("/verify", map[string]string{"code": e.lastCode()}); resp.StatusCode != http.StatusOK {
		t.Fatalf("verify: status %d", resp.StatusCode)
	}
	accept := http.Header{"Accept": {"application/json"}}
	page := func() map[string]any {
		t.Helper()
		resp := b.do(request{target: "/.mfa/account", header: accept})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("account page: status %d", resp.StatusCode)
		}
		return decodeJSON(t, resp)
	}
	v := page()
	s := v["sessions"].([]any)[0].(map[string]any)
	if v["user"] != "alice" || s["country"] != "SE" || s["ip"] != "198.51.100.7" || s["current"] != true {
		t.Fatalf("account page: %v", v)
	}

	e.clock.add(accountFreshness + time.Minute)
	if v := page(); v["fresh"] != false {
		t.Fatalf("an older session is fresh: %v", v)
	}
	resp := b.do(request{target: "/.mfa/account/confirm", header: accept})
	st := decodeJSON(t, resp)
	if resp.StatusCode != http.StatusOK || st["step"] != stepChoose || st["user"] != "alice" {
		t.Fatalf("confirm: status %d, %v; want the choose step for alice", resp.StatusCode, st)
	}
	if resp := b.postJSON("/send", map[string]string{"method": methodEmail}); resp.StatusCode != http.StatusOK {
		t.Fatalf("send: status %d", resp.StatusCode)
	}
	e.h.pending.Wait()
	waitFor(t, func() bool { return len(e.outboxFiles()) >= 2 })
	resp = b.postJSON("/verify", map[string]string{"code": e.lastCode()})
	if got := decodeJSON(t, resp); resp.StatusCode != http.StatusOK || got["redirect"] != "/.mfa/account" {
		t.Fatalf("verify: status %d, %v; want the account page next", resp.StatusCode, got)
	}
	if v := page(); v["fresh"] != true {
		t.Fatalf("after confirming: %v", v)
	}
}

// Ending a session from the account page logs its short handle, never
// the cookie value or the full store key (SECURITY.md K52).
func TestAccountLogsNoSessionID(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	core, logs := observer.New(zap.DebugLevel)
	e.h.logger = zap.New(core)
	e.h.wire()
	a, b := e.signIn("alice"), e.signIn("alice")
	secrets := []string{cookieOf(t, a), cookieOf(t, b)}
	for _, v := range secrets[:2] {
		id, _ := e.h.sessions.idFromCookie(v)
		secrets = append(secrets, e.h.keys.storeID(id))
	}
	resp := a.do(request{target: "/.mfa/account", header: http.Header{"Accept": {"application/json"}}})
	v := decodeJSON(t, resp)
	var other string
	for _, s := range v["sessions"].([]any) {
		if m := s.(map[string]any); m["current"] != true {
			other = m["id"].(string)
		}
	}
	resp = a.do(request{method: http.MethodPost, target: "/.mfa/account", json: map[string]string{"action": "end_session", "id": other, "csrf_token": v["csrf_token"].(string)}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("end_session: status %d", resp.StatusCode)
	}
	var ended bool
	for _, entry := range logs.All() {
		line := entry.Message + fmt.Sprint(entry.ContextMap())
		for _, s := range secrets {
			if strings.Contains(line, s) {
				t.Errorf("log line %q holds a session cookie or store key", line)
			}
		}
		ended = ended || entry.Message == "session ended from the account page" && entry.ContextMap()["id"] == other
	}
	if !ended || other == "" {
		t.Errorf("no audit line for ending the other session %q", other)
	}
}
