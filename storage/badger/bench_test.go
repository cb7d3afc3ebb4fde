package badger

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	const keys = 1000
	for i := range keys {
		if err := s.Put(ctx, fmt.Sprintf("sess/%04d", i), make([]byte, 200), time.Now().Add(time.Hour), false); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Get(ctx, fmt.Sprintf("sess/%04d", i%keys)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

func BenchmarkIncr(b *testing.B) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	b.Run("one key", func(b *testing.B) {
		s := newStore(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Incr(ctx, "thr/hot", 1, exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one key parallel", func(b *testing.B) {
		s := newStore(b)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Incr(ctx, "thr/hot", 1, exp); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	for _, durable := range []bool{false, true} {
		b.Run(fmt.Sprintf("durable=%v", durable), func(b *testing.B) {
			s := newStore(b)
			value := make([]byte, 500)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := s.Put(ctx, fmt.Sprintf("user/%d", i), value, time.Time{}, durable); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkDurablePutParallel measures durable writes from 32 writers at
// once, as in a rush of enrollments or app sign-ins: their fsyncs are
// shared (group commit).
func BenchmarkDurablePutParallel(b *testing.B) {
	ctx := context.Background()
	s := newStore(b)
	b.SetParallelism(16) // 32 writers on two cores
	b.ReportAllocs()
	var n atomic.Int64
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Sprintf("user/%d", n.Add(1))
			if err := s.Put(ctx, key, make([]byte, 300), time.Time{}, true); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkGetLevelZero measures a read while n tables sit in level 0,
// where a read checks the filter of every table: the cost of a larger
// LevelZeroTables. Each table holds 1,000 keys of a 1 KiB record; "hit"
// reads a key of the oldest table, "miss" an absent key (a cooldown that
// is usually not set).
func BenchmarkGetLevelZero(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{5, 10, 15} {
		s := provision(b, &Store{Dir: b.TempDir(), LevelZeroTables: maxLevelZeroTables})
		value := make([]byte, 1000)
		for t := range n + 2 { // the last keys stay in the memtables
			for i := range 1000 {
				if err := s.Put(ctx, fmt.Sprintf("sess/%02d/%04d", t, i), value, time.Now().Add(time.Hour), false); err != nil {
					b.Fatal(err)
				}
			}
		}
		// Flushes run in the background.
		for deadline := time.Now().Add(30 * time.Second); s.db.db.Levels()[0].NumTables < n; {
			if time.Now().After(deadline) {
				b.Fatalf("%d tables in level 0, want %d", s.db.db.Levels()[0].NumTables, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for _, key := range []string{"sess/00/0500", "cool/absent"} {
			name := "hit"
			if key == "cool/absent" {
				name = "miss"
			}
			b.Run(fmt.Sprintf("tables=%d/%s", n, name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := s.Get(ctx, key); err != nil && name == "hit" {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
