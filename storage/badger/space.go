package badger

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/storage"
)

// DefaultMinFree is the free space below which a store refuses writes,
// unless configured otherwise. Badger maps its write-ahead log and value
// log into memory as sparse files and fills them in place; when the disk
// has no block left for a page it touches, the kernel answers with SIGBUS,
// which ends the whole Caddy process. Refusing writes while a margin is
// left keeps Badger away from that edge: the margin covers the memtable's
// log (2 x memtable_size, 2 MiB by default), a memtable flushed to a
// table, and a compaction of the small tables this store makes.
const DefaultMinFree = 64 << 20

// spaceCheckEvery is how long a free-space reading is trusted. One statfs
// a second costs nothing, and a store writes far less than the margin in
// a second.
const spaceCheckEvery = time.Second

// ErrLowSpace is returned (wrapped in storage.ErrNoSpace) by the writes a
// store refuses because the free space on its filesystem fell below the
// configured minimum.
var ErrLowSpace = errors.New("free space below the store's minimum")

// freeSpace caches the free space of the filesystem under a directory.
type freeSpace struct {
	dir   string
	now   func() time.Time
	statf func(dir string) (uint64, error) // free bytes for unprivileged writers

	mu      sync.Mutex
	checked time.Time
	free    uint64
	err     error
}

// bytes returns the free space, read again when the last reading is older
// than spaceCheckEvery.
func (f *freeSpace) bytes() (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if f.checked.IsZero() || now.Sub(f.checked) >= spaceCheckEvery || now.Before(f.checked) {
		f.free, f.err = f.statf(f.dir)
		f.checked = now
	}
	return f.free, f.err
}

// writesRefused counts the writes refused for lack of space, across the
// stores of the process; caddy_mfa_store_writes_refused_total.
var writesRefused = prometheus.NewCounter(prometheus.CounterOpts{
	Namespace: "caddy",
	Subsystem: "mfa",
	Name:      "store_writes_refused_total",
	Help:      "Writes the Badger store refused because its disk was nearly full.",
})

// registerMetrics adds the store's metrics to reg; registering them again
// (another store, a reload) is not an error.
func registerMetrics(reg *prometheus.Registry) error {
	if reg == nil {
		return nil
	}
	err := reg.Register(writesRefused)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) && are.ExistingCollector == writesRefused {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registering store metrics: %w", err)
	}
	return nil
}

// lowSpace tracks whether a Store is refusing writes, so it logs once when
// it starts and once when it stops, not once per write.
type lowSpace struct {
	refusing atomic.Bool
}

// checkSpace returns an error wrapping storage.ErrNoSpace when a write
// must be refused. An unreadable filesystem does not block writes: Badger
// reports real write errors itself.
func (s *Store) checkSpace() error {
	if s.minFree == 0 || s.db.space == nil {
		return nil
	}
	free, err := s.db.space.bytes()
	if err != nil {
		return nil
	}
	if free >= s.minFree {
		if s.low.refusing.CompareAndSwap(true, false) {
			s.logger.Warn("mfa store has free space again; writes resume",
				zap.String("dir", s.dir), zap.Uint64("free_bytes", free))
		}
		return nil
	}
	writesRefused.Inc()
	if s.low.refusing.CompareAndSwap(false, true) {
		s.logger.Error("mfa store disk nearly full; refusing writes until space is freed (reads go on)",
			zap.String("dir", s.dir), zap.Uint64("free_bytes", free), zap.Uint64("min_free_bytes", s.minFree))
	}
	return fmt.Errorf("%w: %w (%d bytes free, %d needed)", storage.ErrNoSpace, ErrLowSpace, free, s.minFree)
}
