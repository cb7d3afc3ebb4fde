package badger

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddymfa/caddy-mfa/storage"
)

func init() {
	caddy.RegisterModule(new(Store))
}

// Store is the default store backend: an embedded Badger database in a
// local directory. The module value itself implements storage.Store.
type Store struct {
	// Dir is the directory that holds the database. Placeholders such as
	// {env.MFA_DATA} are resolved at provision. Default: the "mfa" folder
	// in Caddy's data directory.
	Dir string `json:"dir,omitempty"`

	// MinFree is the free space, in bytes, that the filesystem under Dir
	// must keep: below it the store refuses writes (callers deny with 503,
	// reads go on, signed-in users keep working) until space is freed, so
	// a full disk never reaches Badger's memory-mapped files, where it
	// would crash Caddy. Default: 64 MiB. -1 turns the guard off.
	MinFree int64 `json:"min_free,omitempty"`

	// MemtableSize is the size of Badger's write buffer (two of them, in
	// the Go heap): larger buffers flush to disk less often, smaller ones
	// keep Caddy's memory lower. Default: 1 MiB.
	MemtableSize int64 `json:"memtable_size,omitempty"`

	// BlockCacheSize is the cache of table blocks in memory. It speeds up
	// reads only when tables are compressed. Default: no cache without
	// compression, 8 MiB with it.
	BlockCacheSize int64 `json:"block_cache_size,omitempty"`

	// IndexCacheSize bounds the memory the tables' indexes and filters
	// take as the store grows. Default: 2 MiB.
	IndexCacheSize int64 `json:"index_cache_size,omitempty"`

	// ValueLogFileSize is the size of each value-log file, where records
	// of ValueThreshold and more go. Default: 64 MiB.
	ValueLogFileSize int64 `json:"value_log_file_size,omitempty"`

	// ValueThreshold is the size from which a record is written once to
	// the value log, with only a pointer to it in the tables, instead of
	// into the tables themselves, which compactions rewrite again and
	// again. At most 15% of MemtableSize (Badger's bound). Default: 64 B.
	ValueThreshold int64 `json:"value_threshold,omitempty"`

	// Compactors is how many goroutines compact tables, at least 2.
	// Default: 2.
	Compactors int `json:"compactors,omitempty"`

	// LevelZeroTables is how many tables flushed from memtables gather
	// before Badger compacts them into the level below, which it rewrites
	// each time: more of them make each rewrite serve more sign-ins
	// (fewer tables built and written per sign-in, BENCHMARKS.md) at the
	// cost of a few more filter checks per read and more disk. Writes
	// wait when ten more than this have gathered. Default: 10.
	LevelZeroTables int `json:"level_zero_tables,omitempty"`

	// Compression of tables on disk: "none", "snappy" or "zstd".
	// Default: "none".
	Compression string `json:"compression,omitempty"`

	// The memory settings above take effect when the database opens: a
	// reload that changes them on the same directory keeps the open
	// database's until Caddy restarts (a warning says so).

	// mu guards db: methods hold it for reading while they use the
	// database, Cleanup for writing while it lets go of it.
	mu     sync.RWMutex
	db     *database // nil until open and after Cleanup
	dir    string    // the pool key of db: absolute, symlinks resolved
	path   string    // the directory as provisioned: absolute
	tuned  tuning    // the memory settings the database opens with
	closed bool      // Cleanup ran: the database does not open again

	logger     *zap.Logger      // Caddy's, unless set before Provision (benchmarks: quiet)
	minFree    uint64           // MinFree resolved: 0 when the guard is off
	low        lowSpace         // whether writes are being refused, for the log
	now        func() time.Time // the clock expiry is checked against
	gcInterval time.Duration    // value-log GC period, if this Store opens the database
}

// CaddyModule returns the Caddy module information.
func (*Store) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  storage.Namespace + ".badger",
		New: func() caddy.Module { return new(Store) },
	}
}

// Provision resolves the directory. The database opens when Caddy starts
// the config (see storage.App), or at once when ctx belongs to no config.
func (s *Store) Provision(ctx caddy.Context) error {
	if s.logger == nil {
		s.logger = ctx.Logger()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.gcInterval <= 0 {
		s.gcInterval = defaultGCInterval
	}

	switch {
	case s.MinFree == 0:
		s.minFree = DefaultMinFree
	case s.MinFree > 0:
		s.minFree = uint64(s.MinFree)
	case s.MinFree != -1:
		return fmt.Errorf("min_free must be a size or -1 (off), not %d", s.MinFree)
	}
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}

	t, err := s.tuning()
	if err != nil {
		return err
	}

	dir := filepath.Join(caddy.AppDataDir(), "mfa")
	if s.Dir != "" {
		dir, err = caddy.NewReplacer().ReplaceOrErr(s.Dir, true, true)
		if err != nil {
			return fmt.Errorf("resolving mfa store directory: %w", err)
		}
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolving mfa store directory: %w", err)
	}

	s.mu.Lock()
	if s.path != "" {
		s.mu.Unlock()
		return fmt.Errorf("mfa store %s: already provisioned", s.path)
	}
	s.path, s.tuned = dir, t
	s.mu.Unlock()
	// The database opens when Caddy starts the config, or on first use if
	// a request comes first; provisioning alone, as 'caddy validate'
	// does, creates nothing on disk.
	_, err = storage.OnStart(ctx, s.open)
	return err
}

// open opens the database in the provisioned directory, or takes a
// reference to the database another Store in this process already opened
// there. It does nothing once open, and refuses after Cleanup.
func (s *Store) open() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.db != nil:
		return nil
	case s.path == "" || s.closed:
		return storage.ErrClosed
	}
	dir, err := canonicalDir(s.path)
	if err != nil {
		return err
	}
	t := s.tuned
	val, loaded, err := databases.LoadOrNew(dir, func() (caddy.Destructor, error) {
		return openDatabase(dir, s.logger, s.gcInterval, t)
	})
	if err != nil {
		// The pool keeps no reference for a failed open, so Cleanup must
		// not release one: s.db stays nil.
		return err
	}
	s.db = val.(*database)
	s.dir = dir
	if loaded && s.db.tuning != t {
		s.logger.Warn("the mfa store is already open with other memory settings; they change when Caddy restarts",
			zap.String("dir", dir))
	}
	if c := s.logger.Check(zapcore.DebugLevel, "opened mfa store"); c != nil {
		c.Write(zap.String("dir", dir), zap.Bool("shared", loaded))
	}
	return nil
}

// canonicalDir creates dir if needed and returns its absolute path with
// symlinks resolved, so two spellings of one directory share one database.
func canonicalDir(dir string) (string, error) {
	// The store holds enrollment secrets (encrypted) and session hashes:
	// keep it private to Caddy's user.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("creating mfa store directory %s: %w", dir, err)
	}
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("resolving mfa store directory: %w", err)
	}
	return dir, nil
}

// Location is the database directory: absolute, and once the database is
// open, with symlinks resolved.
func (s *Store) Location() string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.dir != "" {
		return s.dir
	}
	return s.path
}

// Cleanup releases this Store's reference to its database; the last
// reference closes it. Afterwards every method returns storage.ErrClosed.
// Cleanup is idempotent and safe after a failed Provision.
func (s *Store) Cleanup() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.db == nil {
		return nil
	}
	s.db = nil
	deleted, err := databases.Delete(s.dir)
	if deleted && s.logger != nil {
		if c := s.logger.Check(zapcore.DebugLevel, "closed mfa store"); c != nil {
			c.Write(zap.String("dir", s.dir))
		}
	}
	return err
}

// Interface guards
var (
	_ caddy.Module       = (*Store)(nil)
	_ caddy.Provisioner  = (*Store)(nil)
	_ storage.Locator    = (*Store)(nil)
	_ caddy.CleanerUpper = (*Store)(nil)
	_ storage.Store      = (*Store)(nil)
)
