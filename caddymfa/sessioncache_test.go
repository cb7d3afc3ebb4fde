package caddymfa

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// The session cache keeps what was put in the last two spans and forgets
// the rest, and never holds more than its maximum: a storm of sessions
// used once leaves a few seconds' worth in memory.
func TestSessionCacheForgetsIdleSessions(t *testing.T) {
	c := newSessionCache(100)
	t0 := time.Unix(1_700_000_000, 0)
	entry := func(at time.Time) *cachedSession { return &cachedSession{loadedAt: at} }
	c.put("old", entry(t0))
	c.put("active", entry(t0))
	c.put("active", entry(t0.Add(sessionCacheSpan))) // reloaded: a new generation
	if c.get("old") == nil || c.get("active") == nil {
		t.Fatal("entries of the generation before were dropped")
	}
	c.put("new", entry(t0.Add(2*sessionCacheSpan)))
	if c.get("old") != nil {
		t.Error("an entry not put for two spans is still cached")
	}
	if c.get("active") == nil || c.get("new") == nil {
		t.Error("an entry put in the last span is gone")
	}
	c.remove("active")
	if c.get("active") != nil {
		t.Error("removed entry still cached")
	}

	// A storm: many sessions within one span; at most max are cached.
	for i := range 1000 {
		c.put("s"+strconv.Itoa(i), entry(t0.Add(3*sessionCacheSpan)))
	}
	n := 0
	for i := range 1000 {
		if c.get("s"+strconv.Itoa(i)) != nil {
			n++
		}
	}
	if n > 100 || c.get("s999") == nil {
		t.Errorf("%d of 1000 entries cached (max 100), newest cached: %v", n, c.get("s999") != nil)
	}
}

// removeUser and removeStoreKey reach both generations, also while
// other goroutines put entries (run with -race).
func TestSessionCacheRemoveBothGenerations(t *testing.T) {
	c := newSessionCache(1000)
	t0 := time.Unix(1_700_000_000, 0)
	put := func(cookie, user, key string, at time.Time) {
		s := &cachedSession{loadedAt: at, storeKey: key}
		s.User = user
		c.put(cookie, s)
	}
	put("a1", "alice", "k1", t0)
	put("b1", "bob", "k2", t0)
	put("a2", "alice", "k3", t0.Add(sessionCacheSpan)) // the next generation
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			put("c"+strconv.Itoa(i), "carol", "kc", t0.Add(sessionCacheSpan))
		}
	})
	c.removeUser("alice")
	c.removeStoreKey("k2")
	wg.Wait()
	for _, k := range []string{"a1", "a2", "b1"} {
		if c.get(k) != nil {
			t.Errorf("%s still cached", k)
		}
	}
	if c.get("c199") == nil {
		t.Error("another user's entry was dropped")
	}
}
