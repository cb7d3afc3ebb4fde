package badger

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/storage"
)

// quietStore provisions s in a fresh directory without Badger's debug
// lines, which Caddy's default logger (no config sets its level) would
// write for every write: they would cost more than the store itself.
func quietStore(b *testing.B, s *Store) *Store {
	s.Dir = b.TempDir()
	s.logger = zap.NewNop()
	return provision(b, s)
}

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	s := quietStore(b, &Store{})
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
		s := quietStore(b, &Store{})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Incr(ctx, "thr/hot", 1, exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("one key parallel", func(b *testing.B) {
		s := quietStore(b, &Store{})
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
			s := quietStore(b, &Store{})
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
	s := quietStore(b, &Store{})
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
		// The records stay in the tables, not the value log.
		s := quietStore(b, &Store{LevelZeroTables: maxLevelZeroTables, ValueThreshold: 4 << 10})
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

// BenchmarkSignInWrites writes what a standalone email sign-in writes
// (a challenge, the delivery log's counter and entry, then the challenge
// used, a new session and the user's session index in one UpdateMany;
// 1,000 users), then collects the value log as its GC would, and
// reports per sign-in the bytes the process dirtied for writing (the
// memtables' logs, tables, compactions and the value log, all mapped
// files) in the sign-ins and in the GC. It compares value thresholds:
// 1 KiB keeps every record in the tables, 256 B puts only large session
// indexes in the value log, 128 B sessions and challenges too, and 64 B
// (the default) everything but the lockout counters.
func BenchmarkSignInWrites(b *testing.B) {
	ctx := context.Background()
	// Stored sizes (values without the 13-byte expiry header) as a
	// sign-in writes them with records in their binary form; with JSON
	// records, before, a session was 305 bytes, a session index 30+41 a
	// session and a delivery-log entry 214.
	const chalSize, logSize, sessSize = 154, 98, 145
	sidxSize := func(sessions int) int { return 6 + 24*sessions }
	for _, threshold := range []int64{1 << 10, 256, 128, 64} {
		b.Run(fmt.Sprintf("threshold=%d", threshold), func(b *testing.B) {
			s := quietStore(b, &Store{ValueThreshold: threshold, ValueLogFileSize: 1 << 20})
			rng := rand.New(rand.NewPCG(1, 2))
			id := func() string { return fmt.Sprintf("%040x", rng.Uint64()) }
			sidx := make(map[int][]string)
			now := time.Now()
			before := writeBytes(b)
			cpu0 := cpuTime()
			i := 0
			for b.Loop() {
				u := i % 1000
				chal := "chal/" + id()
				if err := s.Update(ctx, chal, func(storage.Record, bool) ([]byte, time.Time, storage.Op, error) {
					return make([]byte, chalSize), now.Add(10 * time.Minute), storage.Write, nil
				}); err != nil {
					b.Fatal(err)
				}
				seq, err := s.Incr(ctx, "meta/log_seq", 1, time.Time{})
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Put(ctx, fmt.Sprintf("log/%d", seq%1000), make([]byte, logSize), now.Add(time.Hour), false); err != nil {
					b.Fatal(err)
				}
				sess := id()
				sidx[u] = append(sidx[u], sess)[max(0, len(sidx[u])-9):]
				keys := []string{fmt.Sprintf("lock/u%d/ip", u), fmt.Sprintf("lock/u%d", u), chal, fmt.Sprintf("user/u%d", u), "sess/" + sess, fmt.Sprintf("sidx/u%d", u)}
				err = s.UpdateMany(ctx, keys, func([]storage.Record, []bool) ([]storage.Change, error) {
					return []storage.Change{{Op: storage.Keep}, {Op: storage.Keep},
						{Op: storage.Write, Value: make([]byte, chalSize), ExpiresAt: now.Add(10 * time.Minute)},
						{Op: storage.Keep},
						{Op: storage.Write, Value: make([]byte, sessSize), ExpiresAt: now.Add(12 * time.Hour)},
						{Op: storage.Write, Value: make([]byte, sidxSize(len(sidx[u]))), ExpiresAt: now.Add(12 * time.Hour)},
					}, nil
				})
				if err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.StopTimer()
			written, cpuWrites := writeBytes(b)-before, cpuTime()-cpu0
			before, cpu0 = writeBytes(b), cpuTime()
			files := 0
			for s.db.db.RunValueLogGC(gcDiscardRatio) == nil {
				files++
			}
			cpu := cpuTime() - cpu0
			b.ReportMetric(float64(written)/1024/float64(i), "KB-written/op")
			b.ReportMetric(float64(cpuWrites.Microseconds())/float64(i), "µs-cpu/op")
			b.ReportMetric(float64(writeBytes(b)-before)/1024/float64(i), "KB-gc-written/op")
			b.ReportMetric(float64(cpu.Microseconds())/float64(i), "µs-gc/op")
			b.ReportMetric(float64(files), "gc-files")
		})
	}
}

// cpuTime returns the CPU time this process has used, user and system,
// background goroutines (Badger's writes, flushes and compactions)
// included.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeBytes returns the bytes this process has dirtied for writing
// (/proc/self/io write_bytes), or skips where there is no such file.
func writeBytes(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skip("no /proc/self/io")
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	b.Skip("no write_bytes in /proc/self/io")
	return 0
}
