package redis

import (
	"context"
	"fmt"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/storage"
)

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	s := newStore(b, redistest.Start(b), nil)
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
	srv := redistest.Start(b)
	exp := time.Now().Add(time.Hour)
	b.Run("one key", func(b *testing.B) {
		s := newStore(b, srv, nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Incr(ctx, "thr/hot", 1, exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one key parallel", func(b *testing.B) {
		s := newStore(b, srv, nil)
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

func BenchmarkUpdate(b *testing.B) {
	ctx := context.Background()
	s := newStore(b, redistest.Start(b), nil)
	exp := time.Now().Add(time.Hour)
	bump := func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		return append(cur.Value, 'x')[:min(len(cur.Value)+1, 100)], exp, storage.Write, nil
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Update(ctx, "chal/hot", bump); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPut(b *testing.B) {
	ctx := context.Background()
	srv := redistest.Start(b, "appendonly yes", "appendfsync everysec")
	for _, durable := range []bool{false, true} {
		b.Run(fmt.Sprintf("durable=%v", durable), func(b *testing.B) {
			s := newStore(b, srv, nil)
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

// BenchmarkList lists a user's 10 sessions in a database that holds many
// other keys: List reads a range of the key index, so its cost grows with
// the records listed, hardly with the database.
func BenchmarkList(b *testing.B) {
	ctx := context.Background()
	srv := redistest.Start(b)
	s := newStore(b, srv, nil)
	raw := rawClient(b, srv)
	for _, total := range []int{1_000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", total), func(b *testing.B) {
			pipe := raw.Pipeline()
			for i := range total {
				k := fmt.Sprintf("sess/%07d", i)
				pipe.Set(ctx, s.prefix+k, encodeValue([]byte("s"), time.Time{}), 0)
				pipe.ZAdd(ctx, s.keysIndex(), goredis.Z{Member: k})
				if pipe.Len() >= 1000 {
					if _, err := pipe.Exec(ctx); err != nil {
						b.Fatal(err)
					}
				}
			}
			for i := range 10 {
				if err := s.Put(ctx, fmt.Sprintf("usess/alice/%d", i), []byte("s"), time.Time{}, false); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := pipe.Exec(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				recs, err := s.List(ctx, "usess/alice/", 0, false)
				if err != nil || len(recs) != 10 {
					b.Fatalf("List = %d records, %v", len(recs), err)
				}
			}
		})
	}
}
