// Package storetest is the conformance suite of storage.Store: the
// behaviour every backend must share, run by each backend's tests against
// a real instance (a Badger directory, a redis-server), so the backends
// cannot drift apart on expiry, ordering, counters or atomicity.
package storetest

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/storage"
)

// NewStore returns a fresh, empty store, cleaned up when tb ends, whose
// expiry checks use now (nil: the real clock).
type NewStore func(tb testing.TB, now func() time.Time) storage.Store

// Run runs the conformance suite, each test on its own store.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, NewStore)
	}{
		{"GetPutDelete", testGetPutDelete},
		{"Expiry", testExpiry},
		{"List", testList},
		{"DeletePrefix", testDeletePrefix},
		{"Incr", testIncr},
		{"Update", testUpdate},
		{"ConcurrentIncrIsExact", testConcurrentIncrIsExact},
		{"ConcurrentUpdateIsExact", testConcurrentUpdateIsExact},
		{"UpdateMany", testUpdateMany},
		{"ConcurrentUpdateManyIsExact", testConcurrentUpdateManyIsExact},
		{"CounterSharedByIncrAndUpdateMany", testCounterSharedByIncrAndUpdateMany},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore) })
	}
}

// Clock is a settable time source for expiry tests.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock set to the current time.
func NewClock() *Clock {
	return &Clock{t: time.Now()}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// errAnyError marks a test case that expects some error.
var errAnyError = errors.New("any error")

func testGetPutDelete(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	c := NewClock()
	s := newStore(t, c.Now)
	exact := c.Now().Add(90*time.Second + 123456789*time.Nanosecond)

	tests := []struct {
		name      string
		key       string
		value     []byte
		expiresAt time.Time
		durable   bool
	}{
		{name: "no expiry", key: "user/alice", value: []byte("enrollment"), durable: true},
		{name: "expiry kept to the nanosecond", key: "chal/1", value: []byte("challenge"), expiresAt: exact},
		{name: "empty value", key: "sess/empty", value: []byte{}},
		{name: "binary value", key: "dev/bin", value: []byte{0, 1, 2, 0xff}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Put(ctx, tt.key, tt.value, tt.expiresAt, tt.durable); err != nil {
				t.Fatalf("Put: %v", err)
			}
			rec, err := s.Get(ctx, tt.key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if rec.Key != tt.key || !bytes.Equal(rec.Value, tt.value) || !rec.ExpiresAt.Equal(tt.expiresAt) {
				t.Errorf("Get = %q %q %v, want %q %q %v",
					rec.Key, rec.Value, rec.ExpiresAt, tt.key, tt.value, tt.expiresAt)
			}
			if err := s.Delete(ctx, tt.key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := s.Get(ctx, tt.key); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
			}
		})
	}

	t.Run("missing key", func(t *testing.T) {
		if _, err := s.Get(ctx, "chal/none"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("delete absent key", func(t *testing.T) {
		if err := s.Delete(ctx, "chal/none"); err != nil {
			t.Errorf("err = %v, want nil", err)
		}
	})
	t.Run("overwrite", func(t *testing.T) {
		for _, v := range []string{"one", "two"} {
			if err := s.Put(ctx, "k", []byte(v), time.Time{}, false); err != nil {
				t.Fatal(err)
			}
		}
		rec, err := s.Get(ctx, "k")
		if err != nil || string(rec.Value) != "two" {
			t.Errorf("Get = %q, %v; want two", rec.Value, err)
		}
	})
	t.Run("returned value is a copy", func(t *testing.T) {
		v := []byte("original")
		if err := s.Put(ctx, "copy", v, time.Time{}, false); err != nil {
			t.Fatal(err)
		}
		v[0] = 'X'
		rec, _ := s.Get(ctx, "copy")
		rec.Value[1] = 'Y'
		again, _ := s.Get(ctx, "copy")
		if string(again.Value) != "original" {
			t.Errorf("stored value changed to %q", again.Value)
		}
	})
	t.Run("empty key is an error", func(t *testing.T) {
		if err := s.Put(ctx, "", []byte("x"), time.Time{}, false); err == nil {
			t.Error("Put with empty key succeeded")
		}
	})
	t.Run("canceled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		if err := s.Put(cctx, "k", []byte("x"), time.Time{}, false); !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	})
}

func testExpiry(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	c := NewClock()
	s := newStore(t, c.Now)
	start := c.Now()
	exp := start.Add(10*time.Second + 500*time.Millisecond)

	if err := s.Put(ctx, "chal/a", []byte("a"), exp, false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Incr(ctx, "thr/a", 1, exp); err != nil {
		t.Fatal(err)
	}

	// One nanosecond before ExpiresAt the record lives; at ExpiresAt it is
	// dead, although the backend's own coarser TTL may still keep it.
	c.Advance(exp.Sub(start) - time.Nanosecond)
	if _, err := s.Get(ctx, "chal/a"); err != nil {
		t.Fatalf("Get just before expiry: %v", err)
	}
	c.Advance(time.Nanosecond)

	tests := []struct {
		name string
		run  func() error
	}{
		{"Get", func() error {
			_, err := s.Get(ctx, "chal/a")
			if !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("err = %v, want ErrNotFound", err)
			}
			return nil
		}},
		{"List", func() error {
			recs, err := s.List(ctx, "", 0, false)
			if err != nil || len(recs) != 0 {
				return fmt.Errorf("listing: %v, %v; want nothing", recs, err)
			}
			return nil
		}},
		{"Update sees absent", func() error {
			return s.Update(ctx, "chal/a", func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
				if found || cur.Value != nil {
					return nil, time.Time{}, storage.Keep, fmt.Errorf("found = %v, value %q", found, cur.Value)
				}
				return nil, time.Time{}, storage.Keep, nil
			})
		}},
		{"Incr restarts with the new expiry", func() error {
			newExp := c.Now().Add(time.Minute)
			n, err := s.Incr(ctx, "thr/a", 1, newExp)
			if err != nil || n != 1 {
				return fmt.Errorf("incrementing: %d, %v; want 1", n, err)
			}
			rec, err := s.Get(ctx, "thr/a")
			if err != nil || !rec.ExpiresAt.Equal(newExp) {
				return fmt.Errorf("counter expiry = %v, %v; want %v", rec.ExpiresAt, err, newExp)
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.run(); err != nil {
				t.Error(err)
			}
		})
	}
}

func testList(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	c := NewClock()
	s := newStore(t, c.Now)
	live := c.Now().Add(time.Hour)
	keys := []string{"a/1", "a/2", "a/3", "ab/1", "b/1", "\xff/1", "\xff\xff"}
	for _, k := range keys {
		if err := s.Put(ctx, k, []byte("v"+k), live, false); err != nil {
			t.Fatal(err)
		}
	}
	// a/25 expires in a minute: listed now, skipped after the clock moves.
	if err := s.Put(ctx, "a/25", []byte("soon"), c.Now().Add(time.Minute), false); err != nil {
		t.Fatal(err)
	}
	c.Advance(time.Minute)

	tests := []struct {
		prefix  string
		limit   int
		reverse bool
		want    []string
	}{
		{"a/", 0, false, []string{"a/1", "a/2", "a/3"}},
		{"a/", 0, true, []string{"a/3", "a/2", "a/1"}},
		{"a/", 2, false, []string{"a/1", "a/2"}},
		{"a/", 2, true, []string{"a/3", "a/2"}},
		{"a/", -1, false, []string{"a/1", "a/2", "a/3"}},
		{"a", 0, false, []string{"a/1", "a/2", "a/3", "ab/1"}},
		{"a", 0, true, []string{"ab/1", "a/3", "a/2", "a/1"}},
		{"b/", 0, true, []string{"b/1"}},
		{"c/", 0, false, nil},
		{"c/", 0, true, nil},
		{"", 0, false, keys},
		{"", 3, true, []string{"\xff\xff", "\xff/1", "b/1"}},
		{"\xff", 0, true, []string{"\xff\xff", "\xff/1"}},
		{"\xff\xff", 0, true, []string{"\xff\xff"}},
		{"\xff\xff", 0, false, []string{"\xff\xff"}},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("%q limit %d reverse %v", tt.prefix, tt.limit, tt.reverse)
		t.Run(name, func(t *testing.T) {
			recs, err := s.List(ctx, tt.prefix, tt.limit, tt.reverse)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range recs {
				got = append(got, r.Key)
				if string(r.Value) != "v"+r.Key || !r.ExpiresAt.Equal(live) {
					t.Errorf("record %q = %q %v", r.Key, r.Value, r.ExpiresAt)
				}
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("keys = %q, want %q", got, tt.want)
			}
		})
	}
}

func testDeletePrefix(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	tests := []struct {
		name   string
		n      int // keys under "d/"
		prefix string
		left   int // keys left in the store
	}{
		{"nothing to delete", 0, "d/", 2},
		{"a few", 3, "d/", 2},
		{"more than a batch", 2*1000 + 7, "d/", 2},
		{"everything", 5, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, nil)
			for i := range tt.n {
				if err := s.Put(ctx, fmt.Sprintf("d/%05d", i), []byte("x"), time.Time{}, false); err != nil {
					t.Fatal(err)
				}
			}
			for _, k := range []string{"d", "e/1"} {
				if err := s.Put(ctx, k, []byte("keep"), time.Time{}, false); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.DeletePrefix(ctx, tt.prefix); err != nil {
				t.Fatalf("DeletePrefix: %v", err)
			}
			recs, err := s.List(ctx, "", 0, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) != tt.left {
				t.Errorf("%d records left, want %d", len(recs), tt.left)
			}
		})
	}
}

func testIncr(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	c := NewClock()
	s := newStore(t, c.Now)
	first := c.Now().Add(15 * time.Minute)
	later := c.Now().Add(time.Hour)

	steps := []struct {
		name      string
		delta     int64
		expiresAt time.Time
		want      int64
	}{
		{"new counter", 1, first, 1},
		{"existing counter keeps its expiry", 1, later, 2},
		{"large delta", 40, later, 42},
		{"negative delta", -50, later, -8},
		{"zero delta", 0, later, -8},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			n, err := s.Incr(ctx, "thr/u", st.delta, st.expiresAt)
			if err != nil || n != st.want {
				t.Fatalf("Incr = %d, %v; want %d", n, err, st.want)
			}
			rec, err := s.Get(ctx, "thr/u")
			if err != nil {
				t.Fatal(err)
			}
			if !rec.ExpiresAt.Equal(first) {
				t.Errorf("expiry = %v, want %v (from creation)", rec.ExpiresAt, first)
			}
			want := binary.BigEndian.AppendUint64(nil, uint64(st.want))
			if !bytes.Equal(rec.Value, want) {
				t.Errorf("value = %x, want 8-byte big-endian %x", rec.Value, want)
			}
		})
	}

	t.Run("no expiry", func(t *testing.T) {
		if _, err := s.Incr(ctx, "lock/u", 1, time.Time{}); err != nil {
			t.Fatal(err)
		}
		rec, err := s.Get(ctx, "lock/u")
		if err != nil || !rec.ExpiresAt.IsZero() {
			t.Errorf("Get = %v, %v; want no expiry", rec.ExpiresAt, err)
		}
	})

	errs := []struct {
		name  string
		setup func(key string) error
		delta int64
	}{
		{"not a counter", func(key string) error {
			return s.Put(ctx, key, []byte("text"), time.Time{}, false)
		}, 1},
		{"overflow", func(key string) error {
			_, err := s.Incr(ctx, key, math.MaxInt64, time.Time{})
			return err
		}, 1},
		{"underflow", func(key string) error {
			_, err := s.Incr(ctx, key, math.MinInt64, time.Time{})
			return err
		}, -1},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			key := "bad/" + tt.name
			if err := tt.setup(key); err != nil {
				t.Fatal(err)
			}
			before, _ := s.Get(ctx, key)
			if _, err := s.Incr(ctx, key, tt.delta, time.Time{}); err == nil {
				t.Fatal("Incr succeeded")
			}
			after, _ := s.Get(ctx, key)
			if !bytes.Equal(before.Value, after.Value) {
				t.Errorf("value changed from %x to %x", before.Value, after.Value)
			}
		})
	}
}

func testUpdate(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	c := NewClock()
	s := newStore(t, c.Now)
	exp := c.Now().Add(time.Minute)
	errFn := errors.New("fn says no")

	tests := []struct {
		name      string
		seed      []byte // stored before the update; nil: absent
		op        storage.Op
		fnErr     error
		wantErr   error
		wantFound bool
		want      []byte // stored after the update; nil: absent
	}{
		{name: "keep", seed: []byte("old"), op: storage.Keep, wantFound: true, want: []byte("old")},
		{name: "keep absent", op: storage.Keep},
		{name: "write", seed: []byte("old"), op: storage.Write, wantFound: true, want: []byte("new")},
		{name: "write absent", op: storage.Write, want: []byte("new")},
		{name: "write durable", seed: []byte("old"), op: storage.WriteDurable, wantFound: true, want: []byte("new")},
		{name: "write durable absent", op: storage.WriteDurable, want: []byte("new")},
		{name: "delete", seed: []byte("old"), op: storage.Delete, wantFound: true},
		{name: "delete absent", op: storage.Delete},
		{name: "fn error", seed: []byte("old"), op: storage.Write, fnErr: errFn, wantErr: errFn, wantFound: true, want: []byte("old")},
		{name: "unknown op", seed: []byte("old"), op: storage.Op(42), wantErr: errAnyError, wantFound: true, want: []byte("old")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := "chal/" + tt.name
			if tt.seed != nil {
				if err := s.Put(ctx, key, tt.seed, exp, false); err != nil {
					t.Fatal(err)
				}
			}
			var gotFound bool
			err := s.Update(ctx, key, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
				gotFound = found
				if !bytes.Equal(cur.Value, tt.seed) || (found && !cur.ExpiresAt.Equal(exp)) {
					t.Errorf("fn got %q %v", cur.Value, cur.ExpiresAt)
				}
				return []byte("new"), exp, tt.op, tt.fnErr
			})
			switch {
			case tt.wantErr == errAnyError:
				if err == nil {
					t.Error("Update succeeded")
				}
			case err != tt.wantErr: // fn's error comes back unchanged, not wrapped
				t.Errorf("Update err = %v, want %v", err, tt.wantErr)
			}
			if gotFound != tt.wantFound {
				t.Errorf("found = %v, want %v", gotFound, tt.wantFound)
			}
			rec, err := s.Get(ctx, key)
			switch {
			case tt.want == nil && !errors.Is(err, storage.ErrNotFound):
				t.Errorf("after Update: Get = %q, %v; want ErrNotFound", rec.Value, err)
			case tt.want != nil && (err != nil || !bytes.Equal(rec.Value, tt.want)):
				t.Errorf("after Update: Get = %q, %v; want %q", rec.Value, err, tt.want)
			}
		})
	}
}

func testConcurrentIncrIsExact(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t, nil)
	const n = 200
	exp := time.Now().Add(time.Hour)

	var wg sync.WaitGroup
	results := make([]int64, n)
	for i := range n {
		wg.Go(func() {
			v, err := s.Incr(ctx, "thr/hot", 1, exp)
			if err != nil {
				t.Errorf("Incr: %v", err)
			}
			results[i] = v
		})
	}
	wg.Wait()

	rec, err := s.Get(ctx, "thr/hot")
	if err != nil {
		t.Fatal(err)
	}
	if got := int64(binary.BigEndian.Uint64(rec.Value)); got != n {
		t.Errorf("counter = %d, want %d", got, n)
	}
	// Each increment saw a distinct value: none was lost or repeated.
	slices.Sort(results)
	for i, v := range results {
		if v != int64(i+1) {
			t.Fatalf("results[%d] = %d, want %d", i, v, i+1)
		}
	}
}

func testConcurrentUpdateIsExact(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t, nil)
	const n = 200

	// Each goroutine bumps a counter embedded in the value, alongside
	// writes and prefix deletes on neighbouring keys.
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			err := s.Update(ctx, "chal/hot", func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
				attempts := 0
				if found {
					var err error
					if attempts, err = strconv.Atoi(string(bytes.TrimPrefix(cur.Value, []byte("attempts=")))); err != nil {
						return nil, time.Time{}, storage.Keep, err
					}
				}
				return fmt.Appendf(nil, "attempts=%d", attempts+1), time.Time{}, storage.Write, nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
		wg.Go(func() {
			if err := s.Put(ctx, "chal/hot/x", []byte("x"), time.Time{}, false); err != nil {
				t.Errorf("Put: %v", err)
			}
			if err := s.DeletePrefix(ctx, "chal/hot/"); err != nil {
				t.Errorf("DeletePrefix: %v", err)
			}
		})
	}
	wg.Wait()

	rec, err := s.Get(ctx, "chal/hot")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("attempts=%d", n); string(rec.Value) != want {
		t.Errorf("value = %q, want %q", rec.Value, want)
	}
}

func testUpdateMany(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	c := NewClock()
	s := newStore(t, c.Now)
	exp := c.Now().Add(time.Minute)
	later := c.Now().Add(time.Hour)
	errFn := errors.New("fn says no")

	// Every case works on three keys: a and b stored before, c absent.
	seed := func(t *testing.T, p string) []string {
		t.Helper()
		keys := []string{p + "/a", p + "/b", p + "/c"}
		for i, k := range keys[:2] {
			if err := s.Put(ctx, k, []byte("old "+"ab"[i:i+1]), exp, false); err != nil {
				t.Fatal(err)
			}
		}
		return keys
	}
	tests := []struct {
		name    string
		changes func(keys []string) []storage.Change
		fnErr   error
		wantErr error
		want    []string // after the update; "" absent
	}{
		{name: "keep all (nil)", changes: func([]string) []storage.Change { return nil },
			want: []string{"old a", "old b", ""}},
		{name: "mixed", changes: func([]string) []storage.Change {
			return []storage.Change{
				{Value: []byte("new a"), ExpiresAt: later, Op: storage.Write},
				{Op: storage.Delete},
				{Value: []byte("new c"), ExpiresAt: later, Op: storage.WriteDurable},
			}
		}, want: []string{"new a", "", "new c"}},
		{name: "keep one", changes: func([]string) []storage.Change {
			return []storage.Change{{}, {Value: []byte("new b"), Op: storage.Write}, {Op: storage.Delete}}
		}, want: []string{"old a", "new b", ""}},
		{name: "fn error writes nothing", fnErr: errFn, wantErr: errFn, changes: func([]string) []storage.Change {
			return []storage.Change{{Value: []byte("new a"), Op: storage.Write}, {}, {}}
		}, want: []string{"old a", "old b", ""}},
		{name: "wrong number of changes writes nothing", wantErr: errAnyError, changes: func([]string) []storage.Change {
			return []storage.Change{{Value: []byte("new a"), Op: storage.Write}}
		}, want: []string{"old a", "old b", ""}},
		{name: "unknown op writes nothing", wantErr: errAnyError, changes: func([]string) []storage.Change {
			return []storage.Change{{Value: []byte("new a"), Op: storage.Write}, {Op: storage.Op(42)}, {}}
		}, want: []string{"old a", "old b", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys := seed(t, "multi/"+tt.name)
			calls := 0
			err := s.UpdateMany(ctx, keys, func(cur []storage.Record, found []bool) ([]storage.Change, error) {
				calls++
				if len(cur) != 3 || len(found) != 3 {
					t.Fatalf("fn got %d records, %d found flags", len(cur), len(found))
				}
				for i, k := range keys {
					wantFound := i < 2
					if found[i] != wantFound || cur[i].Key != k {
						t.Errorf("fn: %s found %v key %q", k, found[i], cur[i].Key)
					}
					if wantFound && (string(cur[i].Value) != "old "+"ab"[i:i+1] || !cur[i].ExpiresAt.Equal(exp)) {
						t.Errorf("fn: %s = %q %v", k, cur[i].Value, cur[i].ExpiresAt)
					}
				}
				return tt.changes(keys), tt.fnErr
			})
			switch {
			case tt.wantErr == errAnyError:
				if err == nil {
					t.Error("UpdateMany succeeded")
				}
			case err != tt.wantErr: // fn's error comes back unchanged, not wrapped
				t.Errorf("UpdateMany err = %v, want %v", err, tt.wantErr)
			}
			if calls != 1 {
				t.Errorf("fn ran %d times without a conflict", calls)
			}
			for i, k := range keys {
				want := tt.want[i]
				rec, err := s.Get(ctx, k)
				switch {
				case tt.want[i] == "" && !errors.Is(err, storage.ErrNotFound):
					t.Errorf("after: Get(%s) = %q, %v; want ErrNotFound", k, rec.Value, err)
				case tt.want[i] != "" && (err != nil || string(rec.Value) != want):
					t.Errorf("after: Get(%s) = %q, %v; want %q", k, rec.Value, err, want)
				}
			}
		})
	}

	t.Run("expiry", func(t *testing.T) {
		keys := []string{"multi/exp/a", "multi/exp/b"}
		err := s.UpdateMany(ctx, keys, func([]storage.Record, []bool) ([]storage.Change, error) {
			return []storage.Change{
				{Value: []byte("short"), ExpiresAt: c.Now().Add(time.Minute), Op: storage.Write},
				{Value: []byte("long"), ExpiresAt: c.Now().Add(time.Hour), Op: storage.Write},
			}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		c.Advance(2 * time.Minute)
		if _, err := s.Get(ctx, keys[0]); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("expired record: %v", err)
		}
		err = s.UpdateMany(ctx, keys, func(cur []storage.Record, found []bool) ([]storage.Change, error) {
			if found[0] || !found[1] || string(cur[1].Value) != "long" {
				t.Errorf("fn saw found %v, %q", found, cur[1].Value)
			}
			return nil, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if recs, err := s.List(ctx, "multi/exp/", 0, false); err != nil || len(recs) != 1 || recs[0].Key != keys[1] {
			t.Errorf("List after: %v, %v", recs, err)
		}
	})

	for _, bad := range [][]string{nil, {"multi/x", "multi/x"}, {"multi/x", ""}, make([]string, storage.MaxUpdateKeys+1)} {
		if len(bad) > 2 {
			for i := range bad {
				bad[i] = "multi/many/" + strconv.Itoa(i)
			}
		}
		err := s.UpdateMany(ctx, bad, func([]storage.Record, []bool) ([]storage.Change, error) {
			t.Errorf("fn ran for keys %q", bad)
			return nil, nil
		})
		if !errors.Is(err, storage.ErrBadKeys) {
			t.Errorf("UpdateMany(%d keys %q...): %v, want ErrBadKeys", len(bad), bad[:min(len(bad), 2)], err)
		}
	}
}

// testConcurrentUpdateManyIsExact moves units between two keys with
// UpdateMany while other writers bump one of them with Update and Incr:
// no change is lost, and no UpdateMany ever sees the pair half-written.
func testConcurrentUpdateManyIsExact(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t, nil)
	const n = 100
	keys := []string{"acct/a", "acct/b"}
	num := func(rec storage.Record, found bool) int {
		if !found {
			return 0
		}
		v, err := strconv.Atoi(string(rec.Value))
		if err != nil {
			t.Errorf("value %q: %v", rec.Value, err)
		}
		return v
	}
	var wg sync.WaitGroup
	for range n {
		// Move one unit from a to b, and check the pair's sum, which only
		// the single-key writers below change, one at a time.
		wg.Go(func() {
			err := s.UpdateMany(ctx, keys, func(cur []storage.Record, found []bool) ([]storage.Change, error) {
				a, b := num(cur[0], found[0]), num(cur[1], found[1])
				return []storage.Change{
					{Value: []byte(strconv.Itoa(a - 1)), Op: storage.Write},
					{Value: []byte(strconv.Itoa(b + 1)), Op: storage.Write},
				}, nil
			})
			if err != nil {
				t.Errorf("UpdateMany: %v", err)
			}
		})
		wg.Go(func() {
			err := s.Update(ctx, keys[1], func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
				return []byte(strconv.Itoa(num(cur, found) + 10)), time.Time{}, storage.Write, nil
			})
			if err != nil {
				t.Errorf("Update: %v", err)
			}
		})
		wg.Go(func() {
			if _, err := s.Incr(ctx, "acct/count", 1, time.Time{}); err != nil {
				t.Errorf("Incr: %v", err)
			}
			err := s.UpdateMany(ctx, []string{"acct/count", keys[0]}, func(cur []storage.Record, found []bool) ([]storage.Change, error) {
				return nil, nil
			})
			if err != nil {
				t.Errorf("UpdateMany keeping: %v", err)
			}
		})
	}
	wg.Wait()
	var got [2]int
	for i, k := range keys {
		rec, err := s.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		got[i] = num(rec, true)
	}
	if got != [2]int{-n, n + 10*n} {
		t.Errorf("a, b = %v, want [%d %d]", got, -n, 11*n)
	}
}

// testCounterSharedByIncrAndUpdateMany counts one counter up with Incr and
// with UpdateMany writing its 8 bytes (as the delivery log's sequence is
// counted): the two kinds of writes take turns, none is lost, and the
// counter keeps the expiry it was made with.
func testCounterSharedByIncrAndUpdateMany(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	s := newStore(t, nil)
	const n = 100
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if _, err := s.Incr(ctx, "ctr/seq", 1, exp); err != nil {
				t.Errorf("Incr: %v", err)
			}
		})
		wg.Go(func() {
			err := s.UpdateMany(ctx, []string{"ctr/seq", fmt.Sprint("ctr/slot/", i)}, func(cur []storage.Record, found []bool) ([]storage.Change, error) {
				var v int64
				e := exp
				if found[0] {
					if len(cur[0].Value) != 8 {
						return nil, fmt.Errorf("counter of %d bytes", len(cur[0].Value))
					}
					v, e = int64(binary.BigEndian.Uint64(cur[0].Value)), cur[0].ExpiresAt
				}
				return []storage.Change{
					{Value: binary.BigEndian.AppendUint64(nil, uint64(v+1)), ExpiresAt: e, Op: storage.Write},
					{Value: []byte("x"), Op: storage.Write},
				}, nil
			})
			if err != nil {
				t.Errorf("UpdateMany: %v", err)
			}
		})
	}
	wg.Wait()
	rec, err := s.Get(ctx, "ctr/seq")
	if err != nil {
		t.Fatal(err)
	}
	if got := int64(binary.BigEndian.Uint64(rec.Value)); len(rec.Value) != 8 || got != 2*n {
		t.Errorf("counter = %x, want %d", rec.Value, 2*n)
	}
	if !rec.ExpiresAt.Equal(exp) {
		t.Errorf("expiry = %v, want %v", rec.ExpiresAt, exp)
	}
}
