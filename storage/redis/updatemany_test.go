package redis

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/storage"
)

// Two nodes (two clients, so no shared in-process lock) move units
// between two keys and bump one of them alone: no write is lost, and no
// UpdateMany writes over a pair the other node changed.
func TestConcurrentUpdateManyAcrossNodes(t *testing.T) {
	ctx := context.Background()
	a, b := twoNodes(t, redistest.Start(t))
	const perNode = 100
	keys := []string{"lock/carol/net", "lock/carol"}
	num := func(rec storage.Record, found bool) int {
		n, _ := strconv.Atoi(string(rec.Value))
		return n
	}
	var wg sync.WaitGroup
	for range perNode {
		for _, s := range []*Store{a, b} {
			wg.Go(func() {
				err := s.UpdateMany(ctx, keys, func(cur []storage.Record, found []bool) ([]storage.Change, error) {
					return []storage.Change{
						{Value: []byte(strconv.Itoa(num(cur[0], found[0]) + 1)), Op: storage.Write},
						{Value: []byte(strconv.Itoa(num(cur[1], found[1]) + 1)), Op: storage.Write},
					}, nil
				})
				if err != nil {
					t.Errorf("UpdateMany: %v", err)
				}
			})
			wg.Go(func() {
				err := s.Update(ctx, keys[1], func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
					return []byte(strconv.Itoa(num(cur, found) + 1000)), time.Time{}, storage.Write, nil
				})
				if err != nil {
					t.Errorf("Update: %v", err)
				}
			})
		}
	}
	wg.Wait()
	for i, want := range []int{2 * perNode, 2*perNode + 2000*perNode} {
		rec, err := a.Get(ctx, keys[i])
		if err != nil {
			t.Fatal(err)
		}
		if got := num(rec, true); got != want {
			t.Errorf("%s = %d, want %d: a write was lost", keys[i], got, want)
		}
	}
}

// A write by another node to a key UpdateMany only read (and keeps) is a
// conflict too: the whole update runs again on what the other node wrote.
func TestUpdateManyRetriesOnKeptKeyConflict(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := newStore(t, srv, nil)
	raw := rawClient(t, srv)
	for _, k := range []string{"guard", "target"} {
		if err := s.Put(ctx, k, []byte("0"), time.Time{}, false); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	err := s.UpdateMany(ctx, []string{"guard", "target"}, func(cur []storage.Record, found []bool) ([]storage.Change, error) {
		seen = append(seen, string(cur[0].Value))
		if len(seen) == 1 {
			if err := raw.Set(ctx, s.prefix+"guard", encodeValue([]byte("locked"), time.Time{}), 0).Err(); err != nil {
				t.Errorf("interfering write: %v", err)
			}
		}
		return []storage.Change{{}, {Value: []byte("guard was " + string(cur[0].Value)), Op: storage.Write}}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[1] != "locked" {
		t.Errorf("fn saw guard %q, want [0 locked]", seen)
	}
	if rec, _ := s.Get(ctx, "target"); string(rec.Value) != "guard was locked" {
		t.Errorf("target = %q", rec.Value)
	}
}
