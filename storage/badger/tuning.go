package badger

import (
	"fmt"

	badgerdb "github.com/dgraph-io/badger/v4"
	boptions "github.com/dgraph-io/badger/v4/options"
	"github.com/dustin/go-humanize"
)

// Defaults of the memory settings (see Store and tuning.apply).
const (
	DefaultMemtableSize     = 1 << 20
	DefaultIndexCacheSize   = 2 << 20
	DefaultValueLogFileSize = 64 << 20
	DefaultCompactors       = 2
	DefaultLevelZeroTables  = 10

	// DefaultValueThreshold puts every record but the small counters
	// (lockouts, send caps, sequence numbers) in the value log: sessions,
	// challenges, session indexes and user records leave the tables, so
	// the tables stay a fraction of the store and their compactions,
	// and the memory Badger builds them in, stop growing with every
	// sign-in stored. The value-log GC then collects the dead records,
	// which costs less than the compactions it saves.
	DefaultValueThreshold = 64

	// DefaultCompressedBlockCacheSize is the block cache when tables are
	// compressed and no block_cache_size is set: Badger needs one then.
	DefaultCompressedBlockCacheSize = 8 << 20

	// tableSize is the size of the tables compactions write, at every
	// level. Badger's default (2 MiB, doubling per level) makes each
	// compaction hold buffers of several times that, and more as the
	// store grows and its deeper levels fill: a table is built whole in
	// memory, several at a time. Our records are small, so more, smaller
	// tables at the deep levels cost little.
	tableSize = 1 << 20
	// tableSizeMultiplier keeps tables at tableSize on every level.
	tableSizeMultiplier = 1
)

// Bounds Badger itself puts on the settings, checked at provision so a
// bad Caddyfile fails with a message that names the setting.
const (
	minMemtableSize     = 1 << 20
	maxMemtableSize     = 1 << 30
	minValueLogFileSize = 1 << 20
	maxValueLogFileSize = 2<<30 - 1
	maxLevelZeroTables  = 100
	// maxValueThresholdShare is Badger's bound on the value threshold:
	// at most this share, in percent, of the memtable size (and 1 MiB).
	maxValueThresholdShare = 15
	maxValueThreshold      = 1 << 20

	// levelZeroStallMargin is how many level-0 tables beyond
	// LevelZeroTables may gather before writes wait for compaction
	// (Badger's own default margin: 5 and 15).
	levelZeroStallMargin = 10
)

// tuning is the part of the Badger options a Store's config sets. The
// first Store to open a directory decides them for as long as the
// database stays open.
type tuning struct {
	memtable    int64
	blockCache  int64
	indexCache  int64
	valueLog    int64
	valueMin    int64
	compactors  int
	levelZero   int
	compression boptions.CompressionType
}

// compressions maps the compression setting to Badger's types.
var compressions = map[string]boptions.CompressionType{
	"none":   boptions.None,
	"snappy": boptions.Snappy,
	"zstd":   boptions.ZSTD,
}

// tuning resolves the Store's memory settings and their defaults.
func (s *Store) tuning() (tuning, error) {
	t := tuning{
		memtable:    DefaultMemtableSize,
		blockCache:  s.BlockCacheSize,
		indexCache:  DefaultIndexCacheSize,
		valueLog:    DefaultValueLogFileSize,
		valueMin:    DefaultValueThreshold,
		compactors:  DefaultCompactors,
		levelZero:   DefaultLevelZeroTables,
		compression: boptions.None,
	}
	if s.MemtableSize != 0 {
		if s.MemtableSize < minMemtableSize || s.MemtableSize > maxMemtableSize {
			return t, fmt.Errorf("memtable_size must be between 1MiB and 1GiB, not %s", size(s.MemtableSize))
		}
		t.memtable = s.MemtableSize
	}
	if s.BlockCacheSize < 0 {
		return t, fmt.Errorf("block_cache_size must be a size, not %d", s.BlockCacheSize)
	}
	if s.IndexCacheSize != 0 {
		if s.IndexCacheSize < 0 {
			return t, fmt.Errorf("index_cache_size must be a size, not %d", s.IndexCacheSize)
		}
		t.indexCache = s.IndexCacheSize
	}
	if s.ValueLogFileSize != 0 {
		if s.ValueLogFileSize < minValueLogFileSize || s.ValueLogFileSize > maxValueLogFileSize {
			return t, fmt.Errorf("value_log_file_size must be at least 1MiB and below 2GiB, not %s", size(s.ValueLogFileSize))
		}
		t.valueLog = s.ValueLogFileSize
	}
	if s.ValueThreshold != 0 {
		limit := min(maxValueThreshold, t.memtable*maxValueThresholdShare/100)
		if s.ValueThreshold < 1 || s.ValueThreshold > limit {
			return t, fmt.Errorf("value_threshold must be between 1B and %s (15%% of memtable_size), not %s", size(limit), size(s.ValueThreshold))
		}
		t.valueMin = s.ValueThreshold
	}
	if s.Compactors != 0 {
		if s.Compactors < 2 {
			return t, fmt.Errorf("compactors must be at least 2, not %d", s.Compactors)
		}
		t.compactors = s.Compactors
	}
	if s.LevelZeroTables != 0 {
		if s.LevelZeroTables < 1 || s.LevelZeroTables > maxLevelZeroTables {
			return t, fmt.Errorf("level_zero_tables must be between 1 and %d, not %d", maxLevelZeroTables, s.LevelZeroTables)
		}
		t.levelZero = s.LevelZeroTables
	}
	if s.Compression != "" {
		c, ok := compressions[s.Compression]
		if !ok {
			return t, fmt.Errorf("compression must be none, snappy or zstd, not %q", s.Compression)
		}
		t.compression = c
	}
	if t.compression != boptions.None && t.blockCache == 0 {
		// Badger needs a block cache to read compressed tables.
		t.blockCache = DefaultCompressedBlockCacheSize
	}
	return t, nil
}

// apply sets the tuned options on o.
func (t tuning) apply(o badgerdb.Options) badgerdb.Options {
	o = o.
		WithMemTableSize(t.memtable).
		WithNumMemtables(2).
		WithBaseTableSize(tableSize).
		WithBlockCacheSize(t.blockCache).
		WithIndexCacheSize(t.indexCache).
		WithValueLogFileSize(t.valueLog).
		WithValueThreshold(t.valueMin).
		WithNumCompactors(t.compactors).
		WithNumLevelZeroTables(t.levelZero).
		WithNumLevelZeroTablesStall(t.levelZero + levelZeroStallMargin).
		WithCompression(t.compression)
	o.TableSizeMultiplier = tableSizeMultiplier // no With method for it
	return o
}

func size(n int64) string {
	if n < 0 {
		return fmt.Sprint(n)
	}
	return humanize.IBytes(uint64(n))
}
