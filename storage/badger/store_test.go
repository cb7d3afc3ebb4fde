package badger

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/caddymfa/caddy-mfa/storage"
	"github.com/caddymfa/caddy-mfa/storage/storetest"
)

// TestConformance runs the behaviour every store shares (storage/storetest)
// on a Badger database in a fresh directory.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(tb testing.TB, now func() time.Time) storage.Store {
		s := &Store{Dir: tb.TempDir()}
		if now != nil {
			s.now = now
		}
		return provision(tb, s)
	})
}

// TestBadgerDropsExpired: with the real clock, a record whose expiry is
// past is hidden by Badger itself, not only by the store's exact check.
func TestBadgerDropsExpired(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Put(ctx, "chal/old", []byte("x"), time.Now().Add(-2*time.Second), false); err != nil {
		t.Fatal(err)
	}
	err := s.db.db.View(func(txn *badgerdb.Txn) error {
		_, err := txn.Get([]byte("chal/old"))
		return err
	})
	if !errors.Is(err, badgerdb.ErrKeyNotFound) {
		t.Errorf("badger Get = %v, want ErrKeyNotFound", err)
	}
}

func TestBadgerExpiryRoundsUp(t *testing.T) {
	tests := []struct {
		name string
		in   time.Time
		want uint64
	}{
		{"zero never expires", time.Time{}, 0},
		{"whole second", time.Unix(1000, 0), 1000},
		{"fraction rounds up", time.Unix(1000, 1), 1001},
		{"before the epoch is past", time.Unix(-5, 0), 1},
		{"the epoch is past", time.Unix(0, 0), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := badgerExpiry(tt.in); got != tt.want {
				t.Errorf("badgerExpiry(%v) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestUpdateRetriesOnConflict(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Put(ctx, "k", []byte("0"), time.Time{}, false); err != nil {
		t.Fatal(err)
	}

	// A write that bypasses the per-key lock lands between the read and
	// the commit: Badger reports a conflict and Update must run fn again on
	// the new value.
	interfere := func(v string) {
		err := s.db.db.Update(func(txn *badgerdb.Txn) error {
			return txn.SetEntry(entry("k", []byte(v), time.Time{}))
		})
		if err != nil {
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
		rec, _ := s.Get(ctx, "k")
		if string(rec.Value) == "lost" {
			t.Error("a conflicting update was written")
		}
	})
}

// Deleting an absent key writes nothing (no tombstone, no new version);
// deleting a present one still removes it.
func TestDeleteAbsentKeyWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	if err := s.Put(ctx, "k", []byte("v"), time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	before := s.db.db.MaxVersion()
	for range 10 {
		if err := s.Delete(ctx, "absent"); err != nil {
			t.Fatalf("Delete(absent): %v", err)
		}
	}
	if after := s.db.db.MaxVersion(); after != before {
		t.Errorf("deleting an absent key wrote: version %d -> %d", before, after)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete(k): %v", err)
	}
	if _, err := s.Get(ctx, "k"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	if s.db.db.MaxVersion() == before {
		t.Error("deleting a present key wrote nothing")
	}
}
