package caddymfa

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/storage"
)

// asJSON rewrites every record under prefix as the JSON earlier versions
// stored, with its expiry, as a store the previous release wrote, and
// returns how many it rewrote.
func asJSON[T any](t *testing.T, store storage.Store, prefix string) int {
	t.Helper()
	recs, err := store.List(t.Context(), prefix, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		v, err := decodeRecord[T](rec.Value)
		if err != nil {
			t.Fatalf("%s: %v", rec.Key, err)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Put(t.Context(), rec.Key, j, rec.ExpiresAt, false); err != nil {
			t.Fatal(err)
		}
	}
	return len(recs)
}

// storedFormat is the first byte of the record at key.
func storedFormat(t *testing.T, store storage.Store, key string) byte {
	t.Helper()
	rec, err := store.Get(t.Context(), key)
	if err != nil || len(rec.Value) == 0 {
		t.Fatalf("%s: %q, %v", key, rec.Value, err)
	}
	return rec.Value[0]
}

// TestSignInAcrossRecordUpgrade: a store written by a release that kept
// its records as JSON goes on working: a session made before the upgrade
// still admits, a code sent before it is still accepted, failures counted
// before it still count (SECURITY.md A5), and the records written after
// it are binary.
func TestSignInAcrossRecordUpgrade(t *testing.T) {
	e := standaloneEnv(t, nil)
	emailCode := func(sent int) func() (string, string) {
		return func() (string, string) {
			e.h.pending.Wait()
			waitFor(t, func() bool { return len(e.outboxFiles()) >= sent })
			return methodEmail, e.lastCode()
		}
	}
	first := e.browser("")
	first.ip = "203.0.113.5"
	first.lang = "de" // so the user has a record (the language of their last sign-in)
	e.signInSteps(first, "/identify", map[string]string{"username": "alice"}, emailCode(1))
	e.clock.add(time.Minute)

	// The next sign-in is under way: a code sent, one wrong guess counted.
	b := e.identifyFrom("alice", "203.0.113.5", 2)
	b.lang = "sv"
	chalKey := keyChallenge + e.h.challenges.id(challengeSlot{binding: e.flowID(b)})
	code := e.lastCode()
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	guess := func(code string, want int) {
		t.Helper()
		st, ans := b.step("/verify", b.state()["csrf_token"].(string), map[string]string{"method": methodEmail, "code": code})
		if st != want {
			t.Fatalf("verify %s: status %d, want %d: %v", code, st, want, ans)
		}
	}
	guess(wrong, http.StatusUnauthorized)
	lockKey := keyLockout + "alice/" + clientNetwork(b.ip)

	// The upgrade: every record as the previous release stored it.
	for prefix, n := range map[string]int{
		keyChallenge: asJSON[challenge](t, e.h.store, keyChallenge),
		keySession:   asJSON[session](t, e.h.store, keySession),
		keyLockout:   asJSON[lockRecord](t, e.h.store, keyLockout),
		keyUser:      asJSON[userRecord](t, e.h.store, keyUser),
	} {
		if n == 0 {
			t.Fatalf("no %s record to rewrite", prefix)
		}
	}
	if f := storedFormat(t, e.h.store, lockKey); f != '{' {
		t.Fatalf("lockout record not rewritten as JSON: format %#x", f)
	}
	e.clock.add(2 * sessionRecheck) // past the session cache

	// The session made before the upgrade admits.
	first.protected()

	// The failure counted before the upgrade still counts.
	guess(wrong, http.StatusUnauthorized)
	rec, err := e.h.store.Get(t.Context(), lockKey)
	if err != nil {
		t.Fatal(err)
	}
	if lr, err := decodeRecord[lockRecord](rec.Value); err != nil || lr.Fails != 2 || rec.Value[0] != formatLock {
		t.Fatalf("lockout after a failure before and one after the upgrade: %+v, %v, format %#x", lr, err, rec.Value[0])
	}

	// The code sent before the upgrade signs in; what it writes is binary.
	guess(code, http.StatusOK)
	b.protected()
	for key, want := range map[string]byte{
		chalKey:           formatChallenge,
		keyUser + "alice": formatUser,
	} {
		if f := storedFormat(t, e.h.store, key); f != want {
			t.Errorf("%s after the upgrade: format %#x, want %#x", key, f, want)
		}
	}
	sessions, err := e.h.store.List(t.Context(), keySession, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	binary := 0
	for _, s := range sessions {
		if s.Value[0] == formatSession {
			binary++
		}
	}
	if len(sessions) != 2 || binary != 1 {
		t.Errorf("sessions: %d, %d of them binary; want the one from before the upgrade and a binary one", len(sessions), binary)
	}
}
