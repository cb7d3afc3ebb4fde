package badger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	boptions "github.com/dgraph-io/badger/v4/options"

	"github.com/caddymfa/caddy-mfa/storage"
)

func TestUnmarshalCaddyfileMemory(t *testing.T) {
	tests := []struct {
		input   string
		want    mem
		wantErr bool
	}{
		{input: "badger {\n\tmemtable_size 2MiB\n}", want: mem{memtable: 2 << 20}},
		{input: "badger {\n\tblock_cache_size 16MiB\n\tcompression snappy\n}", want: mem{block: 16 << 20, compression: "snappy"}},
		{input: "badger {\n\tblock_cache_size off\n}", want: mem{}},
		{input: "badger {\n\tindex_cache_size 1MiB\n\tvalue_log_file_size 32MiB\n\tcompactors 3\n\tcompression zstd\n}",
			want: mem{index: 1 << 20, valueLog: 32 << 20, compactors: 3, compression: "zstd"}},
		{input: "badger {\n\tmemtable_size 512KiB\n}", wantErr: true},
		{input: "badger {\n\tmemtable_size 2GiB\n}", wantErr: true},
		{input: "badger {\n\tmemtable_size off\n}", wantErr: true},
		{input: "badger {\n\tmemtable_size\n}", wantErr: true},
		{input: "badger {\n\tmemtable_size 2MiB 4MiB\n}", wantErr: true},
		{input: "badger {\n\tmemtable_size 2MiB\n\tmemtable_size 4MiB\n}", wantErr: true},
		{input: "badger {\n\tindex_cache_size off\n}", wantErr: true},
		{input: "badger {\n\tvalue_log_file_size 4GiB\n}", wantErr: true},
		{input: "badger {\n\tcompactors 1\n}", wantErr: true},
		{input: "badger {\n\tcompactors many\n}", wantErr: true},
		{input: "badger {\n\tcompression lz4\n}", wantErr: true},
		{input: "badger {\n\tmemtable 2MiB\n}", wantErr: true},
		{input: "badger {\n\tlevel_zero_tables 20\n}", want: mem{levelZero: 20}},
		{input: "badger {\n\tvalue_threshold 1KiB\n}", want: mem{valueMin: 1 << 10}},
		{input: "badger {\n\tmemtable_size 8MiB\n\tvalue_threshold 1MiB\n}", want: mem{memtable: 8 << 20, valueMin: 1 << 20}},
		{input: "badger {\n\tvalue_threshold 200KiB\n}", wantErr: true}, // above 15% of the 1 MiB memtable
		{input: "badger {\n\tmemtable_size 64MiB\n\tvalue_threshold 2MiB\n}", wantErr: true},
		{input: "badger {\n\tvalue_threshold off\n}", wantErr: true},
		{input: "badger {\n\tlevel_zero_tables 0\n}", wantErr: true},
		{input: "badger {\n\tlevel_zero_tables 101\n}", wantErr: true},
		{input: "badger {\n\tlevel_zero_tables some\n}", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			var s Store
			err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if got := s.settings(); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// mem is what a test compares of a Store's memory settings.
type mem struct {
	memtable, block, index, valueLog int64
	valueMin                         int64
	compactors, levelZero            int
	compression                      string
}

func (s *Store) settings() mem {
	return mem{s.MemtableSize, s.BlockCacheSize, s.IndexCacheSize, s.ValueLogFileSize, s.ValueThreshold, s.Compactors, s.LevelZeroTables, s.Compression}
}

// The defaults and the settings reach the database Badger opens; settings
// out of Badger's bounds fail at provision.
func TestTuningReachesBadger(t *testing.T) {
	t.Run("defaults", func(t *testing.T) {
		s := provision(t, &Store{Dir: t.TempDir()})
		o := s.db.db.Opts()
		if o.MemTableSize != DefaultMemtableSize || o.BlockCacheSize != 0 || o.IndexCacheSize != DefaultIndexCacheSize ||
			o.ValueLogFileSize != DefaultValueLogFileSize || o.NumCompactors != DefaultCompactors || o.Compression != boptions.None {
			t.Errorf("options = memtable %d, block cache %d, index cache %d, value log %d, compactors %d, compression %v",
				o.MemTableSize, o.BlockCacheSize, o.IndexCacheSize, o.ValueLogFileSize, o.NumCompactors, o.Compression)
		}
		if o.NumLevelZeroTables != DefaultLevelZeroTables || o.NumLevelZeroTablesStall != DefaultLevelZeroTables+levelZeroStallMargin {
			t.Errorf("level-0 tables = %d, stall at %d", o.NumLevelZeroTables, o.NumLevelZeroTablesStall)
		}
		if o.ValueThreshold != DefaultValueThreshold {
			t.Errorf("value threshold = %d, want %d", o.ValueThreshold, DefaultValueThreshold)
		}
		// Tables stay small at every level, so a compaction's buffers
		// do not grow with the store.
		if o.BaseTableSize != tableSize || o.TableSizeMultiplier != 1 {
			t.Errorf("tables of %d bytes, %d times larger a level; want %d and 1", o.BaseTableSize, o.TableSizeMultiplier, tableSize)
		}
	})
	t.Run("set", func(t *testing.T) {
		s := provision(t, &Store{Dir: t.TempDir(), MemtableSize: 3 << 20, BlockCacheSize: 1 << 20, IndexCacheSize: 3 << 20,
			ValueLogFileSize: 16 << 20, ValueThreshold: 300 << 10, Compactors: 3, LevelZeroTables: 7, Compression: "snappy"})
		o := s.db.db.Opts()
		if o.MemTableSize != 3<<20 || o.BlockCacheSize != 1<<20 || o.IndexCacheSize != 3<<20 ||
			o.ValueLogFileSize != 16<<20 || o.NumCompactors != 3 || o.Compression != boptions.Snappy {
			t.Errorf("options = memtable %d, block cache %d, index cache %d, value log %d, compactors %d, compression %v",
				o.MemTableSize, o.BlockCacheSize, o.IndexCacheSize, o.ValueLogFileSize, o.NumCompactors, o.Compression)
		}
		if o.ValueThreshold != 300<<10 {
			t.Errorf("value threshold = %d, want %d", o.ValueThreshold, 300<<10)
		}
		if o.NumLevelZeroTables != 7 || o.NumLevelZeroTablesStall != 7+levelZeroStallMargin {
			t.Errorf("level-0 tables = %d, stall at %d; want 7 and %d", o.NumLevelZeroTables, o.NumLevelZeroTablesStall, 7+levelZeroStallMargin)
		}
		if err := s.Put(context.Background(), "k", []byte("v"), time.Time{}, false); err != nil {
			t.Fatal(err)
		}
	})
	for _, bad := range []func(*Store){
		func(s *Store) { s.MemtableSize = 1000 },
		func(s *Store) { s.BlockCacheSize = -5 },
		func(s *Store) { s.IndexCacheSize = -1 },
		func(s *Store) { s.ValueLogFileSize = 1 << 40 },
		func(s *Store) { s.Compactors = 1 },
		func(s *Store) { s.Compression = "lz4" },
		func(s *Store) { s.LevelZeroTables = -1 },
		func(s *Store) { s.ValueThreshold = -1 },
		func(s *Store) { s.ValueThreshold = 200 << 10 },
		func(s *Store) { s.LevelZeroTables = maxLevelZeroTables + 1 },
	} {
		s := &Store{Dir: t.TempDir()}
		bad(s)
		if err := s.Provision(caddyContext(t)); err == nil {
			s.Cleanup()
			t.Errorf("Provision(%v) succeeded, want an error", s.settings())
		}
	}
}

// FuzzUnmarshalCaddyfile: the storage block parser never panics, and what
// it accepts provisions: its memory settings are within Badger's bounds.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, s := range []string{
		"badger",
		"badger /var/lib/mfa {\n\tmin_free 64MiB\n}",
		"badger {\n\tmemtable_size 2MiB\n\tblock_cache_size off\n\tindex_cache_size 1MiB\n}",
		"badger {\n\tvalue_log_file_size 32MiB\n\tcompactors 4\n\tcompression zstd\n}",
		"badger {\n\tlevel_zero_tables 15\n}",
		"badger {\n\tmemtable_size 2MiB\n\tvalue_threshold 300KiB\n}",
		"badger {\n\tmemtable_size 1GiB\n\tcompactors 2\n\tcompression\n}",
		"badger {\n\t{\n\t}\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		tokens, err := caddyfile.Tokenize([]byte(input), "Caddyfile")
		if err != nil {
			return
		}
		var s Store
		if err := s.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens)); err != nil {
			return
		}
		if _, err := s.tuning(); err != nil {
			t.Fatalf("accepted %q, but its settings fail: %v", input, err)
		}
	})
}

// A store written with compression (Badger's default before) reads back
// after a restart with the default of none: each table keeps its own.
func TestCompressedTablesReadAfterChange(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := &Store{Dir: dir, Compression: "snappy"}
	if err := old.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if err := old.Put(ctx, fmt.Sprintf("k/%04d", i), bytes.Repeat([]byte("v"), 200), time.Time{}, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.db.db.Flatten(1); err != nil { // into tables, compressed
		t.Fatal(err)
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	s := provision(t, &Store{Dir: dir})
	recs, err := s.List(ctx, "k/", 0, false)
	if err != nil || len(recs) != 2000 {
		t.Fatalf("List = %d records, %v; want 2000", len(recs), err)
	}
}

// Compression without a block cache gets the default one, which Badger
// needs to read compressed tables.
func TestCompressionGetsBlockCache(t *testing.T) {
	s := provision(t, &Store{Dir: t.TempDir(), Compression: "zstd"})
	if got := s.db.db.Opts().BlockCacheSize; got != DefaultCompressedBlockCacheSize {
		t.Errorf("block cache = %d, want %d", got, DefaultCompressedBlockCacheSize)
	}
}

// Records at or above the value threshold live in the value log: they
// read back exactly after overwrites, deletions, a restart, compaction and
// a value-log GC, and the durable ones after a restart.
func TestValueLogRecordsSurvive(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	value := func(i, gen int) []byte {
		return bytes.Repeat([]byte{byte('a' + (i+gen)%26)}, DefaultValueThreshold+i%300)
	}
	s := &Store{Dir: dir, ValueLogFileSize: 1 << 20}
	if err := s.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	for gen := range 3 {
		for i := range 2000 {
			key := fmt.Sprintf("sess/%04d", i)
			if gen == 2 && i%2 == 1 {
				if err := s.Delete(ctx, key); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := s.Put(ctx, key, value(i, gen), time.Time{}, i%100 == 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(s *Store, when string) {
		t.Helper()
		for i := range 2000 {
			rec, err := s.Get(ctx, fmt.Sprintf("sess/%04d", i))
			if i%2 == 1 {
				if !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("%s: deleted record %d: err = %v, want ErrNotFound", when, i, err)
				}
				continue
			}
			if err != nil || !bytes.Equal(rec.Value, value(i, 2)) {
				t.Fatalf("%s: record %d = %d bytes, %v; want its last value", when, i, len(rec.Value), err)
			}
		}
	}
	check(s, "written")
	if err := s.Cleanup(); err != nil {
		t.Fatal(err)
	}
	s = provision(t, &Store{Dir: dir, ValueLogFileSize: 1 << 20})
	check(s, "after a restart")
	if err := s.db.db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	rewrites := 0
	for ; rewrites < 100; rewrites++ {
		if err := s.db.db.RunValueLogGC(gcDiscardRatio); err != nil {
			break
		}
	}
	t.Logf("value-log GC rewrote %d files", rewrites)
	check(s, "after compaction and value-log GC")
}

// A store keeps its records when value_threshold changes between runs (as
// it does on an upgrade that changed its default): records written whole
// into the tables are read after a restart that sends them to the value
// log, and the other way round, through compaction and value-log GC.
func TestValueThresholdChangeKeepsRecords(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	expires := time.Now().Add(time.Hour).Truncate(time.Second)
	value := func(i, gen int) []byte {
		return bytes.Repeat([]byte{byte('a' + (i+gen)%26)}, 8+i%400)
	}
	want := make(map[string][]byte)
	write := func(s *Store, gen int) {
		t.Helper()
		for i := range 1200 {
			key := fmt.Sprintf("sess/%04d", i)
			switch {
			case gen > 0 && i%3 == 0:
				continue // kept from the run before
			case gen > 0 && i%3 == 1 && i%2 == 0:
				if err := s.Delete(ctx, key); err != nil {
					t.Fatal(err)
				}
				delete(want, key)
				continue
			}
			if err := s.Put(ctx, key, value(i, gen), expires, false); err != nil {
				t.Fatal(err)
			}
			want[key] = value(i, gen)
		}
	}
	check := func(s *Store, when string) {
		t.Helper()
		for i := range 1200 {
			key := fmt.Sprintf("sess/%04d", i)
			rec, err := s.Get(ctx, key)
			v, ok := want[key]
			if !ok {
				if !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("%s: deleted %s: err = %v, want ErrNotFound", when, key, err)
				}
				continue
			}
			if err != nil || !bytes.Equal(rec.Value, v) || !rec.ExpiresAt.Equal(expires) {
				t.Fatalf("%s: %s = %d bytes until %v, %v; want %d bytes until %v", when, key, len(rec.Value), rec.ExpiresAt, err, len(v), expires)
			}
		}
	}
	thresholds := []int64{1 << 10, 0, 256, 1 << 10} // 0: the default
	for gen, threshold := range thresholds {
		s := provision(t, &Store{Dir: dir, ValueThreshold: threshold, ValueLogFileSize: 1 << 20})
		check(s, fmt.Sprintf("opened with value_threshold %d", threshold))
		write(s, gen)
		check(s, fmt.Sprintf("written with value_threshold %d", threshold))
		if gen == len(thresholds)-1 {
			if err := s.db.db.Flatten(1); err != nil {
				t.Fatal(err)
			}
			for range 100 {
				if s.db.db.RunValueLogGC(gcDiscardRatio) != nil {
					break
				}
			}
			check(s, "after compaction and value-log GC")
		}
		if err := s.Cleanup(); err != nil {
			t.Fatal(err)
		}
	}
}
