package badger

import (
	"errors"
	"fmt"
	"hash/maphash"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	badgerdb "github.com/dgraph-io/badger/v4"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// databases holds one open database per directory for the whole process.
// A config reload provisions the new handler before the old one is cleaned
// up, and Badger's directory lock refuses a second open of the same
// directory even from the same process, so every Store on one directory
// shares the pooled database and the last Cleanup closes it.
var databases = caddy.NewUsagePool()

const (
	// defaultGCInterval is how often the value log is garbage collected.
	defaultGCInterval = 5 * time.Minute

	// gcDiscardRatio is the share of stale data that makes a value log
	// file worth rewriting.
	gcDiscardRatio = 0.5

	// keyLocks is the number of in-process locks that serialize writes to
	// keys hashing to the same slot.
	keyLocks = 64
)

// database is the pooled value: an open Badger database, its value-log GC
// goroutine and the per-key write locks every Store on it shares.
type database struct {
	db     *badgerdb.DB
	logger *zap.Logger
	// tuning is what the database was opened with; a Store that shares
	// it with other settings warns that they wait for a restart.
	tuning tuning

	seed  maphash.Seed
	locks [keyLocks]sync.Mutex
	// syncer shares fsyncs between concurrent durable writes.
	syncer *groupSync
	// space is the free space under the directory, for the stores' guard.
	space *freeSpace

	stop   chan struct{} // closed by Destruct to stop the GC goroutine
	gcDone chan struct{} // closed when the GC goroutine has returned
	gcRuns chan struct{} // receives a value after each GC pass, if anyone listens
}

// options returns Badger options sized for a plugin that lives inside
// Caddy rather than for a database server. Badger's defaults reserve a
// 64 MiB memtable (up to five of them), a 256 MiB block cache and 1 GiB
// value-log files, sized for Dgraph; our records are small (challenges,
// counters, sessions, enrollments of at most a few KiB) and few. Badger's
// memtables and caches live in the Go heap, which the garbage collector
// lets grow to about twice what is live, so every MiB kept costs about two
// of Caddy's memory. So, by default (each settable, see Store):
//
//   - two 1 MiB memtables bound write-buffer memory at 2 MiB (a memtable
//     holds some 150 sign-ins' records before it is flushed to a table).
//     A flush builds its table in a buffer Badger keeps for the next
//     build, up to eight of them, which starts at twice the table size
//     (1 MiB tables, below) and doubles when the table does not fit: a
//     1 MiB memtable fits the first 2 MiB, a 2 MiB one made every buffer
//     grow to 6 MiB, and Caddy's own memory rose by some 25 MB every 4,000
//     sign-ins, up to about 120 MB, where with 1 MiB it stays near 60 MB
//     (BENCHMARKS.md);
//   - tables are not compressed and have no block cache: reads come
//     straight from the memory-mapped tables (page cache the kernel can
//     reclaim) with no decompression, which with compression would need a
//     cache in the Go heap to be fast;
//   - a 2 MiB index cache bounds read memory as the store grows, and
//     compactions write 1 MiB tables, which keeps their buffers small;
//   - 64 MiB value-log files keep disk use and GC rewrites small;
//   - records of 256 bytes and more are written once to the value log,
//     and only a pointer to them goes through the memtable, its log,
//     level 0 and every compaction after it. Records in their binary form
//     are mostly smaller (a session about 160 bytes stored); what reaches
//     the threshold is a session index listing many sessions and larger
//     records such as users with several keys. With JSON records, when
//     sessions were about 320 bytes, 256 instead of 1 KiB wrote a third
//     fewer bytes per sign-in and built half the tables (BENCHMARKS.md);
//     a lower threshold moves records that die young (challenges) there
//     too, whose collection costs about what it saves. The value-log GC
//     below reclaims their space once half of a log file is dead;
//   - two compactors, the minimum Badger allows, to share Caddy's CPUs;
//   - ten tables gather in level 0 before they are compacted (Badger's
//     default is five). Each such compaction rewrites the level below,
//     which holds most of the store (keys are random: every table overlaps
//     all of it), so twice the tables per compaction halve those rewrites:
//     over 16,000 sign-ins a third fewer tables built and a quarter fewer
//     bytes written (BENCHMARKS.md). A read checks one more filter per
//     level-0 table, about 0.1µs each (BenchmarkGetLevelZero).
//
// Badger writes through to the OS without fsync (SyncWrites false); Put
// syncs explicitly when the caller asks for a durable write.
func options(dir string, logger *zap.Logger, t tuning) badgerdb.Options {
	return t.apply(badgerdb.DefaultOptions(dir).
		WithLogger(zapLogger{logger.Named("badger").WithOptions(zap.WithCaller(false))}))
}

// errLockedMarker is part of the error Badger returns when another
// process holds the directory lock. Badger does not wrap the underlying
// error, so the message is the only way to recognize it.
const errLockedMarker = "Another process is using this Badger database"

// openDatabase opens the Badger database in dir and starts its value-log
// GC, which runs every gcInterval until Destruct.
func openDatabase(dir string, logger *zap.Logger, gcInterval time.Duration, t tuning) (*database, error) {
	db, err := badgerdb.Open(options(dir, logger, t))
	if err != nil {
		if strings.Contains(err.Error(), errLockedMarker) {
			return nil, fmt.Errorf("opening mfa store %s: the directory is in use by another process "+
				"(is another Caddy running? use 'caddy reload' to change a running server's config): %w", dir, err)
		}
		return nil, fmt.Errorf("opening mfa store %s: %w", dir, err)
	}
	d := &database{
		db:     db,
		logger: logger,
		tuning: t,
		seed:   maphash.MakeSeed(),
		stop:   make(chan struct{}),
		gcDone: make(chan struct{}),
		gcRuns: make(chan struct{}),
		syncer: newGroupSync(db.Sync, gatherWait),
		space:  &freeSpace{dir: dir, now: time.Now, statf: statFree},
	}
	go d.runGC(gcInterval)
	return d, nil
}

// runGC garbage-collects the value log every interval, rewriting files
// until Badger reports nothing left worth rewriting, and returns when stop
// is closed.
func (d *database) runGC(interval time.Duration) {
	defer close(d.gcDone)
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-ticker.C:
		}
		for {
			select {
			case <-d.stop:
				return
			default:
			}
			err := d.db.RunValueLogGC(gcDiscardRatio)
			if err == nil {
				continue
			}
			if !errors.Is(err, badgerdb.ErrNoRewrite) && !errors.Is(err, badgerdb.ErrRejected) {
				d.logger.Warn("collecting value log garbage", zap.Error(err))
			}
			break
		}
		select {
		case d.gcRuns <- struct{}{}:
		default:
		}
	}
}

// lockFor returns the in-process lock for key. Holding it around a
// read-modify-write means writers in this process never conflict with
// each other on one key, so Badger's optimistic conflict detection only
// has to catch the rare write that races in from DeletePrefix.
func (d *database) lockFor(key string) *sync.Mutex {
	return &d.locks[maphash.String(d.seed, key)%keyLocks]
}

// lockAll takes the in-process locks of every key, each slot once and in
// slot order, so two writers of overlapping key sets cannot deadlock, and
// returns the unlock.
func (d *database) lockAll(keys []string) (unlock func()) {
	var want [keyLocks]bool
	for _, k := range keys {
		want[maphash.String(d.seed, k)%keyLocks] = true
	}
	for i := range want {
		if want[i] {
			d.locks[i].Lock()
		}
	}
	return func() {
		for i := range want {
			if want[i] {
				d.locks[i].Unlock()
			}
		}
	}
}

// Destruct stops the GC goroutine and closes the database. The usage pool
// calls it once, when the last Store using the directory is cleaned up.
func (d *database) Destruct() error {
	d.syncer.close()
	close(d.stop)
	<-d.gcDone
	if err := d.db.Close(); err != nil {
		return fmt.Errorf("closing mfa store: %w", err)
	}
	return nil
}

// zapLogger routes Badger's log lines to Caddy's logger. Badger is chatty
// at info level (every compaction and table flush), so info goes to debug;
// warnings and errors keep their level.
type zapLogger struct {
	l *zap.Logger
}

func (z zapLogger) Errorf(format string, args ...any) {
	z.log(zapcore.ErrorLevel, format, args)
}

func (z zapLogger) Warningf(format string, args ...any) {
	z.log(zapcore.WarnLevel, format, args)
}

func (z zapLogger) Infof(format string, args ...any) {
	z.log(zapcore.DebugLevel, format, args)
}

func (z zapLogger) Debugf(format string, args ...any) {
	z.log(zapcore.DebugLevel, format, args)
}

func (z zapLogger) log(level zapcore.Level, format string, args []any) {
	if !z.l.Core().Enabled(level) {
		return
	}
	if c := z.l.Check(level, strings.TrimSpace(fmt.Sprintf(format, args...))); c != nil {
		c.Write()
	}
}

// Interface guards
var (
	_ caddy.Destructor = (*database)(nil)
	_ badgerdb.Logger  = zapLogger{}
)
