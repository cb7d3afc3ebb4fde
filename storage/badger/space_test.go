package badger

import (
	"errors"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/caddymfa/caddy-mfa/internal/smallfs"
	"github.com/caddymfa/caddy-mfa/storage"
)

// Below min_free the store refuses the writes that grow it (Put, Update,
// Incr) with storage.ErrNoSpace; reads and deletes go on (a sign-out or a
// revocation still works); writes resume on their own once space returns.
func TestLowSpaceRefusesWritesKeepsReads(t *testing.T) {
	now := time.Now()
	s := newStore(t)
	free := uint64(1 << 30)
	s.db.space = &freeSpace{dir: s.dir, now: func() time.Time { return now }, statf: func(string) (uint64, error) { return free, nil }}
	ctx := t.Context()
	exp := now.Add(time.Hour)
	if err := s.Put(ctx, "sess/a", []byte("a"), exp, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "sess/b", []byte("b"), exp, false); err != nil {
		t.Fatal(err)
	}

	refusedBefore := testutil.ToFloat64(writesRefused)
	free = DefaultMinFree - 1
	now = now.Add(spaceCheckEvery)
	writes := map[string]func() error{
		"put":     func() error { return s.Put(ctx, "sess/c", []byte("c"), exp, false) },
		"durable": func() error { return s.Put(ctx, "user/c", []byte("c"), time.Time{}, true) },
		"update": func() error {
			return s.Update(ctx, "sess/a", func(storage.Record, bool) ([]byte, time.Time, storage.Op, error) {
				return []byte("a2"), exp, storage.Write, nil
			})
		},
		"incr": func() error { _, err := s.Incr(ctx, "lock/a", 1, exp); return err },
	}
	for name, write := range writes {
		if err := write(); !errors.Is(err, storage.ErrNoSpace) || !errors.Is(err, ErrLowSpace) {
			t.Errorf("%s with the disk nearly full: %v, want ErrNoSpace", name, err)
		}
	}
	if n := testutil.ToFloat64(writesRefused) - refusedBefore; n != float64(len(writes)) {
		t.Errorf("caddy_mfa_store_writes_refused_total grew by %v, want %d", n, len(writes))
	}
	if rec, err := s.Get(ctx, "sess/a"); err != nil || string(rec.Value) != "a" {
		t.Fatalf("read with the disk nearly full: %q %v", rec.Value, err)
	}
	if err := s.Delete(ctx, "sess/b"); err != nil {
		t.Fatalf("delete with the disk nearly full: %v", err)
	}
	if _, err := s.Get(ctx, "sess/b"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted record: %v", err)
	}

	// Space returns: within one check interval, writes work again.
	free = DefaultMinFree
	now = now.Add(spaceCheckEvery)
	for name, write := range writes {
		if err := write(); err != nil {
			t.Errorf("%s after space returned: %v", name, err)
		}
	}
}

// min_free -1 turns the guard off.
func TestMinFreeOff(t *testing.T) {
	s := provision(t, &Store{Dir: t.TempDir(), MinFree: -1})
	s.db.space = &freeSpace{dir: s.dir, now: time.Now, statf: func(string) (uint64, error) { return 0, nil }}
	if err := s.Put(t.Context(), "k", []byte("v"), time.Time{}, false); err != nil {
		t.Fatal(err)
	}
}

// On a real filesystem that fills up, the store refuses writes before
// Badger runs out of space (which would crash the process with SIGBUS in
// its memory-mapped log), keeps serving reads, and writes again once the
// space is freed, without being reopened.
func TestFullFilesystem(t *testing.T) {
	dir := smallfs.Mount(t, 160<<20)
	s := provision(t, &Store{Dir: dir})
	ctx := t.Context()
	value := make([]byte, 512)
	if err := s.Put(ctx, "sess/kept", value, time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	filler := smallfs.Fill(t, dir, DefaultMinFree-(8<<20))
	s.db.space.checked = time.Time{} // read the free space now, not in a second

	// Keep writing as a busy site would: every write is refused, none
	// reaches the disk, the process stays up.
	for i := range 5000 {
		err := s.Put(ctx, "chal/x", value, time.Now().Add(time.Minute), false)
		if !errors.Is(err, storage.ErrNoSpace) {
			t.Fatalf("write %d on a nearly full disk: %v", i, err)
		}
	}
	if _, err := s.Get(ctx, "sess/kept"); err != nil {
		t.Fatalf("read on a nearly full disk: %v", err)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * spaceCheckEvery)
	for {
		err := s.Put(ctx, "chal/x", value, time.Now().Add(time.Minute), true)
		if err == nil {
			break
		}
		if !errors.Is(err, storage.ErrNoSpace) || time.Now().After(deadline) {
			t.Fatalf("write after space was freed: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.Get(ctx, "chal/x"); err != nil {
		t.Fatalf("read back after recovery: %v", err)
	}
}
