package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/storage"
	"github.com/caddymfa/caddy-mfa/storage/storetest"
	goredis "github.com/redis/go-redis/v9"
)

// TestConformance runs the behaviour every store shares (storage/storetest)
// on a real redis-server, each test under its own key prefix.
func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	storetest.Run(t, func(tb testing.TB, now func() time.Time) storage.Store {
		return newStore(tb, srv, now)
	})
}

// twoNodes returns two Stores on srv with one key prefix and separate
// clients, connection pools and key locks, as two Caddy nodes would have.
// (Their pool sizes differ only so that the process-wide client pool does
// not hand them one client.)
func twoNodes(t *testing.T, srv *redistest.Server) (a, b *Store) {
	t.Helper()
	prefix := uniquePrefix()
	a = provision(t, &Store{URL: "redis://" + srv.Addr, KeyPrefix: prefix, PoolSize: 20})
	b = provision(t, &Store{URL: "redis://" + srv.Addr, KeyPrefix: prefix, PoolSize: 21})
	if a.client == b.client {
		t.Fatal("the two nodes share a client")
	}
	return a, b
}

func TestTwoNodesSeeEachOthersWrites(t *testing.T) {
	ctx := context.Background()
	a, b := twoNodes(t, redistest.Start(t))
	exp := time.Now().Add(time.Hour)

	if err := a.Put(ctx, "sess/1", []byte("alice"), exp, false); err != nil {
		t.Fatal(err)
	}
	rec, err := b.Get(ctx, "sess/1")
	if err != nil || string(rec.Value) != "alice" || !rec.ExpiresAt.Equal(exp) {
		t.Errorf("node b Get = %q %v, %v; want alice %v", rec.Value, rec.ExpiresAt, err, exp)
	}
	if err := b.Delete(ctx, "sess/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "sess/1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("node a Get after node b's Delete: err = %v, want ErrNotFound", err)
	}
	for i, s := range []*Store{a, b, a} {
		n, err := s.Incr(ctx, "lock/alice", 1, exp)
		if err != nil || n != int64(i+1) {
			t.Errorf("Incr #%d = %d, %v; want %d", i+1, n, err, i+1)
		}
	}
}

// TestConcurrentIncrAcrossNodes is the store's part of SECURITY.md M59:
// attempts counted on two nodes add up exactly, so there is one budget.
func TestConcurrentIncrAcrossNodes(t *testing.T) {
	ctx := context.Background()
	a, b := twoNodes(t, redistest.Start(t))
	const n = 1000
	exp := time.Now().Add(time.Hour)

	var wg sync.WaitGroup
	results := make([]int64, n)
	for i := range n {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Go(func() {
			v, err := s.Incr(ctx, "chal/hot/attempts", 1, exp)
			if err != nil {
				t.Errorf("Incr: %v", err)
			}
			results[i] = v
		})
	}
	wg.Wait()

	slices.Sort(results)
	for i, v := range results {
		if v != int64(i+1) {
			t.Fatalf("results[%d] = %d, want %d: an increment was lost or repeated", i, v, i+1)
		}
	}
	if got, err := a.Incr(ctx, "chal/hot/attempts", 0, exp); err != nil || got != n {
		t.Errorf("counter = %d, %v; want %d", got, err, n)
	}
}

func TestConcurrentUpdateAcrossNodes(t *testing.T) {
	ctx := context.Background()
	a, b := twoNodes(t, redistest.Start(t))
	const perNode = 150

	bump := func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		n := 0
		if found {
			var err error
			if n, err = strconv.Atoi(string(cur.Value)); err != nil {
				return nil, time.Time{}, storage.Keep, err
			}
		}
		return []byte(strconv.Itoa(n + 1)), time.Time{}, storage.Write, nil
	}
	var wg sync.WaitGroup
	for range perNode {
		for _, s := range []*Store{a, b} {
			wg.Go(func() {
				if err := s.Update(ctx, "chal/hot", bump); err != nil {
					t.Errorf("Update: %v", err)
				}
			})
		}
	}
	wg.Wait()

	rec, err := a.Get(ctx, "chal/hot")
	if err != nil {
		t.Fatal(err)
	}
	if want := strconv.Itoa(2 * perNode); string(rec.Value) != want {
		t.Errorf("value = %q, want %q: a write was lost", rec.Value, want)
	}
}

func TestUpdateRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := newStore(t, srv, nil)
	raw := rawClient(t, srv)
	if err := s.Put(ctx, "k", []byte("0"), time.Time{}, false); err != nil {
		t.Fatal(err)
	}

	// Another node writes between Update's read and its compare-and-set:
	// the write must fail and fn run again on the other node's value.
	interfere := func(v string) {
		if err := raw.Set(ctx, s.prefix+"k", encodeValue([]byte(v), time.Time{}), 0).Err(); err != nil {
			t.Errorf("interfering write: %v", err)
		}
	}

	t.Run("retries and sees the winner's value", func(t *testing.T) {
		var seen []string
		err := s.Update(ctx, "k", func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
			seen = append(seen, string(cur.Value))
			if len(seen) == 1 {
				interfere("10")
			}
			n, _ := strconv.Atoi(string(cur.Value))
			return []byte(strconv.Itoa(n + 1)), time.Time{}, storage.Write, nil
		})
		if err != nil {
			t.Fatalf("Update: %v", err)
		}
		if !slices.Equal(seen, []string{"0", "10"}) {
			t.Errorf("fn saw %q, want [0 10]", seen)
		}
		rec, _ := s.Get(ctx, "k")
		if string(rec.Value) != "11" {
			t.Errorf("value = %q, want 11", rec.Value)
		}
	})

	t.Run("a delete in between is a conflict too", func(t *testing.T) {
		calls := 0
		err := s.Update(ctx, "k", func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
			calls++
			if calls == 1 {
				raw.Del(ctx, s.prefix+"k")
			}
			if found {
				return []byte("from " + string(cur.Value)), time.Time{}, storage.Write, nil
			}
			return []byte("fresh"), time.Time{}, storage.Write, nil
		})
		if err != nil || calls != 2 {
			t.Fatalf("Update = %v after %d calls; want nil after 2", err, calls)
		}
		if rec, _ := s.Get(ctx, "k"); string(rec.Value) != "fresh" {
			t.Errorf("value = %q, want fresh", rec.Value)
		}
	})

	t.Run("gives up with ErrConflict", func(t *testing.T) {
		calls := 0
		err := s.Update(ctx, "k", func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
			calls++
			interfere(strconv.Itoa(calls))
			return []byte("lost"), time.Time{}, storage.Write, nil
		})
		if !errors.Is(err, storage.ErrConflict) {
			t.Errorf("err = %v, want ErrConflict", err)
		}
		if calls != maxAttempts {
			t.Errorf("fn ran %d times, want %d", calls, maxAttempts)
		}
		if rec, _ := s.Get(ctx, "k"); string(rec.Value) == "lost" {
			t.Error("a conflicting update was written")
		}
	})
}

func TestServerExpiry(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := newStore(t, srv, nil)
	raw := rawClient(t, srv)
	base := time.Now().Add(time.Hour).Truncate(time.Second)

	tests := []struct {
		name      string
		expiresAt time.Time
		wantMS    int64 // PEXPIRETIME: -1 no expiry
	}{
		{"no expiry", time.Time{}, -1},
		{"whole millisecond", base.Add(250 * time.Millisecond), base.UnixMilli() + 250},
		{"fraction rounds up", base.Add(250*time.Millisecond + time.Nanosecond), base.UnixMilli() + 251},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, op := range []string{"Put", "Update", "Incr"} {
				key := "exp/" + tt.name + "/" + op
				var err error
				switch op {
				case "Put":
					err = s.Put(ctx, key, []byte("v"), tt.expiresAt, false)
				case "Update":
					err = s.Update(ctx, key, func(storage.Record, bool) ([]byte, time.Time, storage.Op, error) {
						return []byte("v"), tt.expiresAt, storage.Write, nil
					})
				case "Incr":
					_, err = s.Incr(ctx, key, 1, tt.expiresAt)
				}
				if err != nil {
					t.Fatalf("%s: %v", op, err)
				}
				got, err := raw.PExpireTime(ctx, s.prefix+key).Result()
				if err != nil {
					t.Fatal(err)
				}
				want := time.Duration(tt.wantMS) * time.Millisecond
				if tt.wantMS == -1 {
					want = -1 // go-redis passes Redis' -1 (no expiry) through
				}
				if got != want {
					t.Errorf("%s: PEXPIRETIME = %v, want %v", op, got, want)
				}
			}
		})
	}

	t.Run("a counter keeps its server expiry", func(t *testing.T) {
		first := base.Add(time.Minute)
		for _, exp := range []time.Time{first, first.Add(time.Hour), {}} {
			if _, err := s.Incr(ctx, "exp/counter", 1, exp); err != nil {
				t.Fatal(err)
			}
		}
		got, err := raw.PExpireTime(ctx, s.prefix+"exp/counter").Result()
		if want := time.Duration(first.UnixMilli()) * time.Millisecond; err != nil || got != want {
			t.Errorf("PEXPIRETIME = %v, %v; want %v", got, err, want)
		}
	})

	t.Run("a record written already expired is not kept", func(t *testing.T) {
		past := []time.Time{time.Now().Add(-time.Second), time.Unix(0, 0), time.Unix(-5, 0)}
		for i, exp := range past {
			key := fmt.Sprintf("exp/past/%d", i)
			if err := s.Put(ctx, key, []byte("v"), exp, false); err != nil {
				t.Fatalf("Put expiring %v: %v", exp, err)
			}
			if n, err := raw.Exists(ctx, s.prefix+key).Result(); err != nil || n != 0 {
				t.Errorf("expiring %v: key exists on the server (%d, %v)", exp, n, err)
			}
			if _, err := s.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("expiring %v: Get err = %v, want ErrNotFound", exp, err)
			}
		}
	})
}

func TestPxat(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want int64
	}{
		{"zero never expires", time.Time{}, 0},
		{"whole millisecond", time.UnixMilli(1000), 1000},
		{"fraction rounds up", time.UnixMilli(1000).Add(time.Nanosecond), 1001},
		{"the epoch is past", time.Unix(0, 0), 1},
		{"before the epoch is past", time.Unix(-5, 1), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pxat(tt.in); got != tt.want {
				t.Errorf("pxat(%v) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestIncrScriptEdges(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := storetest.NewClock()
	s := newStore(t, srv, c.Now)

	tests := []struct {
		name   string
		deltas []int64
		want   int64
	}{
		{"to max", []int64{math.MaxInt64 - 1, 1}, math.MaxInt64},
		{"to min", []int64{math.MinInt64 + 1, -1}, math.MinInt64},
		{"cross zero", []int64{-3, 5}, 2},
		{"carry through every byte", []int64{0xff_ffff_ffff_ffff, 1}, 0x100_0000_0000_0000},
		{"borrow through every byte", []int64{0x100_0000_0000_0000, -1}, 0xff_ffff_ffff_ffff},
		{"min plus max", []int64{math.MinInt64, math.MaxInt64}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n int64
			for _, d := range tt.deltas {
				var err error
				if n, err = s.Incr(ctx, "edge/"+tt.name, d, time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			if n != tt.want {
				t.Errorf("counter = %d, want %d", n, tt.want)
			}
		})
	}

	t.Run("expired before the epoch", func(t *testing.T) {
		// An expiry before 1970 is past: the counter restarts.
		if _, err := s.Incr(ctx, "edge/old", 5, time.Unix(-100, 0)); err != nil {
			t.Fatal(err)
		}
		n, err := s.Incr(ctx, "edge/old", 1, time.Time{})
		if err != nil || n != 1 {
			t.Errorf("Incr = %d, %v; want 1", n, err)
		}
	})
	t.Run("errors name the cause", func(t *testing.T) {
		if _, err := s.Incr(ctx, "edge/ovf", math.MaxInt64, time.Time{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Incr(ctx, "edge/ovf", 1, time.Time{}); !errors.Is(err, errOverflow) {
			t.Errorf("overflow: err = %v, want errOverflow", err)
		}
		if err := s.Put(ctx, "edge/text", []byte("text"), time.Time{}, false); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Incr(ctx, "edge/text", 1, time.Time{}); !errors.Is(err, errNotCounter) {
			t.Errorf("text: err = %v, want errNotCounter", err)
		}
		raw := rawClient(t, srv)
		if err := raw.Set(ctx, s.prefix+"edge/junk", "\x07junk", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Incr(ctx, "edge/junk", 1, time.Time{}); !errors.Is(err, errCorrupt) {
			t.Errorf("junk: err = %v, want errCorrupt", err)
		}
	})
}

func TestKeyPrefixIsolation(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	a := provision(t, &Store{URL: "redis://" + srv.Addr, KeyPrefix: "site-a/"})
	b := provision(t, &Store{URL: "redis://" + srv.Addr, KeyPrefix: "site-b/"})
	keys := []string{"user/alice", "sess/1", "thr/x"}
	for _, s := range []*Store{a, b} {
		for _, k := range keys {
			if err := s.Put(ctx, k, []byte(s.prefix+k), time.Time{}, false); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, s := range []*Store{a, b} {
		rec, err := s.Get(ctx, "user/alice")
		if err != nil || string(rec.Value) != s.prefix+"user/alice" {
			t.Errorf("%s Get = %q, %v", s.prefix, rec.Value, err)
		}
		recs, err := s.List(ctx, "", 0, false)
		if err != nil || len(recs) != len(keys) {
			t.Fatalf("%s List = %d records, %v; want %d", s.prefix, len(recs), err, len(keys))
		}
		for _, r := range recs {
			if string(r.Value) != s.prefix+r.Key {
				t.Errorf("%s List returned %q = %q", s.prefix, r.Key, r.Value)
			}
		}
	}
	if err := a.DeletePrefix(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if recs, err := a.List(ctx, "", 0, false); err != nil || len(recs) != 0 {
		t.Errorf("site a after DeletePrefix: %d records, %v", len(recs), err)
	}
	if recs, err := b.List(ctx, "", 0, false); err != nil || len(recs) != len(keys) {
		t.Errorf("site b after site a's DeletePrefix: %d records, %v; want %d", len(recs), err, len(keys))
	}
	if n, err := a.Incr(ctx, "thr/x", 1, time.Time{}); err != nil || n != 1 {
		t.Errorf("site a Incr on a key site b holds = %d, %v; want 1", n, err)
	}
}

func TestGlobCharactersMatchLiterally(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := provision(t, &Store{URL: "redis://" + srv.Addr, KeyPrefix: "p[1]*?\\/"})
	other := provision(t, &Store{URL: "redis://" + srv.Addr, KeyPrefix: "p1x/"})
	for _, k := range []string{"ab", "a*", "a?", "a[b]", `a\b`, "a]", "x"} {
		if err := s.Put(ctx, k, []byte("v"), time.Time{}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := other.Put(ctx, "a*", []byte("other"), time.Time{}, false); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		prefix string
		want   []string
	}{
		{"a*", []string{"a*"}},
		{"a?", []string{"a?"}},
		{"a[", []string{"a[b]"}},
		{"a[b]", []string{"a[b]"}},
		{`a\`, []string{`a\b`}},
		{"a]", []string{"a]"}},
		{"a", []string{"a*", "a?", "a[b]", `a\b`, "a]", "ab"}},
		{"*", nil},
		{"", []string{"a*", "a?", "a[b]", `a\b`, "a]", "ab", "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.prefix, func(t *testing.T) {
			recs, err := s.List(ctx, tt.prefix, 0, false)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, r.Key)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
			}
		})
	}

	if err := s.DeletePrefix(ctx, "a["); err != nil {
		t.Fatal(err)
	}
	if recs, _ := s.List(ctx, "", 0, false); len(recs) != 6 {
		t.Errorf("DeletePrefix(%q) left %d records, want 6", "a[", len(recs))
	}
	if err := s.DeletePrefix(ctx, ""); err != nil {
		t.Fatal(err)
	}
	if rec, err := other.Get(ctx, "a*"); err != nil || string(rec.Value) != "other" {
		t.Errorf("a store whose prefix the pattern would match as a glob lost its record: %q, %v", rec.Value, err)
	}
}

func TestListReadsInBatches(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := newStore(t, srv, nil)
	n := 2*mgetBatch + 3
	for i := range n {
		if err := s.Put(ctx, fmt.Sprintf("log/%05d", i), []byte("v"), time.Time{}, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		limit   int
		reverse bool
		first   string
		count   int
	}{
		{0, false, "log/00000", n},
		{0, true, fmt.Sprintf("log/%05d", n-1), n},
		{mgetBatch + 1, true, fmt.Sprintf("log/%05d", n-1), mgetBatch + 1},
	} {
		recs, err := s.List(ctx, "log/", tt.limit, tt.reverse)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != tt.count || recs[0].Key != tt.first {
			t.Errorf("List(limit %d, reverse %v) = %d records from %q; want %d from %q",
				tt.limit, tt.reverse, len(recs), recs[0].Key, tt.count, tt.first)
		}
	}
}

// indexed returns the keys in s's key index and in its expiry index.
func indexed(t *testing.T, raw *goredis.Client, s *Store) (keys, expiring []string) {
	t.Helper()
	ctx := context.Background()
	keys, err := raw.ZRange(ctx, s.keysIndex(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	expiring, err = raw.ZRange(ctx, s.expiryIndex(), 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	return keys, expiring
}

func TestIndexFollowsWrites(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	raw := rawClient(t, srv)
	c := storetest.NewClock()
	s := newStore(t, srv, c.Now)
	later := c.Now().Add(time.Hour)
	write := func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		return []byte("u"), later, storage.Write, nil
	}
	del := func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		return nil, time.Time{}, storage.Delete, nil
	}

	steps := []struct {
		name         string
		do           func() error
		keys, expiry []string
	}{
		{"put without expiry", func() error { return s.Put(ctx, "a", []byte("v"), time.Time{}, false) }, []string{"a"}, nil},
		{"put with expiry", func() error { return s.Put(ctx, "b", []byte("v"), later, false) }, []string{"a", "b"}, []string{"b"}},
		{"expiry removed by a rewrite", func() error { return s.Put(ctx, "b", []byte("v"), time.Time{}, false) }, []string{"a", "b"}, nil},
		{"incr", func() error { _, err := s.Incr(ctx, "c", 1, later); return err }, []string{"a", "b", "c"}, []string{"c"}},
		{"update write", func() error { return s.Update(ctx, "d", write) }, []string{"a", "b", "c", "d"}, []string{"c", "d"}},
		{"update delete", func() error { return s.Update(ctx, "d", del) }, []string{"a", "b", "c"}, []string{"c"}},
		{"delete", func() error { return s.Delete(ctx, "c") }, []string{"a", "b"}, nil},
		{"put already expired", func() error { return s.Put(ctx, "e", []byte("v"), c.Now().Add(-time.Hour), false) }, []string{"a", "b"}, nil},
		{"delete prefix", func() error { return s.DeletePrefix(ctx, "a") }, []string{"b"}, nil},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		keys, expiry := indexed(t, raw, s)
		if !slices.Equal(keys, st.keys) || !slices.Equal(expiry, st.expiry) {
			t.Errorf("after %s: indexes %q %q, want %q %q", st.name, keys, expiry, st.keys, st.expiry)
		}
	}

	t.Run("reserved keys", func(t *testing.T) {
		if err := s.Put(ctx, "\x00keys", []byte("v"), time.Time{}, false); !errors.Is(err, errReservedKey) {
			t.Errorf("Put on the index's key: err = %v, want errReservedKey", err)
		}
	})
}

func TestSweepDropsDeadIndexEntries(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	raw := rawClient(t, srv)
	c := storetest.NewClock()
	s := newStore(t, srv, c.Now)
	const dead = 10
	for i := range dead {
		if err := s.Put(ctx, fmt.Sprintf("chal/%d", i), []byte("v"), c.Now().Add(time.Minute), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, "user/alice", []byte("v"), time.Time{}, false); err != nil {
		t.Fatal(err)
	}

	// Within the sweep margin after their expiry, the dead records keep
	// their entries: a node whose clock is behind may still see them live.
	c.Advance(time.Minute + sweepMargin/2)
	if err := s.Put(ctx, "sess/1", []byte("v"), time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	if keys, _ := indexed(t, raw, s); len(keys) != dead+2 {
		t.Fatalf("%d keys indexed, want %d", len(keys), dead+2)
	}

	// Past the margin, each write sweeps a few: three writes sweep ten.
	c.Advance(sweepMargin)
	for i := range 3 {
		if _, err := s.Incr(ctx, "thr/x", 1, time.Time{}); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	keys, expiry := indexed(t, raw, s)
	if want := []string{"sess/1", "thr/x", "user/alice"}; !slices.Equal(keys, want) || len(expiry) != 0 {
		t.Errorf("indexes after the sweep: %q %q, want %q and none expiring", keys, expiry, want)
	}
	if n, err := raw.Exists(ctx, s.prefix+"chal/0").Result(); err != nil || n != 0 {
		t.Errorf("a swept record is still stored (%d, %v)", n, err)
	}
}

func TestListSkipsRecordsTheServerDropped(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	raw := rawClient(t, srv)
	s := newStore(t, srv, nil)
	for _, k := range []string{"usess/alice/1", "usess/alice/2", "usess/alice/3"} {
		if err := s.Put(ctx, k, []byte("v"), time.Time{}, false); err != nil {
			t.Fatal(err)
		}
	}
	// The server drops a record (its TTL ran out) but its index entry
	// stays until a sweep.
	if err := raw.Del(ctx, s.prefix+"usess/alice/2").Err(); err != nil {
		t.Fatal(err)
	}
	for _, limit := range []int{0, 2} {
		recs, err := s.List(ctx, "usess/alice/", limit, false)
		if err != nil || len(recs) != 2 || recs[0].Key != "usess/alice/1" || recs[1].Key != "usess/alice/3" {
			t.Errorf("List(limit %d) = %v, %v; want usess/alice/1 and 3", limit, recs, err)
		}
	}
}
