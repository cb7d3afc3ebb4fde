package badger

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/caddymfa/caddy-mfa/storage"
)

func TestModuleRegistered(t *testing.T) {
	info, err := caddy.GetModule("mfa.storage.badger")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.New().(storage.Store); !ok {
		t.Errorf("%T does not implement storage.Store", info.New())
	}
}

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		input   string
		wantDir string
		wantMin int64
		wantErr bool
	}{
		{input: `badger`},
		{input: `badger /var/lib/mfa`, wantDir: "/var/lib/mfa"},
		{input: `badger {env.MFA_DIR}/db`, wantDir: "{env.MFA_DIR}/db"},
		{input: `badger /a /b`, wantErr: true},
		{input: "badger {\n\tdir /x\n}", wantErr: true},
		{input: "badger /a {\n\tsync\n}", wantErr: true},
		{input: "badger /a {\n\tmin_free 256MiB\n}", wantDir: "/a", wantMin: 256 << 20},
		{input: "badger {\n\tmin_free 1GB\n}", wantMin: 1e9},
		{input: "badger {\n\tmin_free off\n}", wantMin: -1},
		{input: "badger {\n\tmin_free\n}", wantErr: true},
		{input: "badger {\n\tmin_free 0\n}", wantErr: true},
		{input: "badger {\n\tmin_free lots\n}", wantErr: true},
		{input: "badger {\n\tmin_free 1MiB 2MiB\n}", wantErr: true},
		{input: "badger {\n\tmin_free 1MiB\n\tmin_free 2MiB\n}", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			var s Store
			err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (s.Dir != tt.wantDir || s.MinFree != tt.wantMin) {
				t.Errorf("Dir, MinFree = %q, %d; want %q, %d", s.Dir, s.MinFree, tt.wantDir, tt.wantMin)
			}
		})
	}
}

func TestProvisionDir(t *testing.T) {
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("XDG_DATA_HOME", base)
	t.Setenv("MFA_TEST_DIR", base)

	tests := []struct {
		name    string
		dir     string
		want    string
		wantErr bool
	}{
		{name: "default", want: filepath.Join(base, "caddy", "mfa")},
		{name: "placeholder", dir: "{env.MFA_TEST_DIR}/store", want: filepath.Join(base, "store")},
		{name: "unclean path", dir: base + "/x/../y//", want: filepath.Join(base, "y")},
		{name: "unset variable", dir: "{env.MFA_TEST_UNSET}/store", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Store{Dir: tt.dir}
			err := s.Provision(caddyContext(t))
			defer s.Cleanup()
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && s.dir != tt.want {
				t.Errorf("dir = %q, want %q", s.dir, tt.want)
			}
		})
	}

	t.Run("symlink shares the database", func(t *testing.T) {
		real := filepath.Join(base, "real")
		link := filepath.Join(base, "link")
		if err := os.MkdirAll(real, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(real, link); err != nil {
			t.Skipf("symlinks: %v", err)
		}
		a := provision(t, &Store{Dir: real})
		b := provision(t, &Store{Dir: link})
		if a.db != b.db {
			t.Error("two spellings of one directory opened two databases")
		}
	})
}

func TestReloadSharesOneDatabase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()

	// A reload provisions the new config's store before cleaning up the
	// old one: both must open, on one database.
	old := &Store{Dir: dir}
	if err := old.Provision(caddyContext(t)); err != nil {
		t.Fatalf("provisioning old store: %v", err)
	}
	if _, err := old.Incr(ctx, "lock/alice", 3, time.Time{}); err != nil {
		t.Fatal(err)
	}
	next := provision(t, &Store{Dir: dir})
	if old.db != next.db {
		t.Fatal("the new store opened a second database")
	}
	shared := next.db

	if err := old.Cleanup(); err != nil {
		t.Fatalf("cleaning up old store: %v", err)
	}
	if shared.db.IsClosed() {
		t.Fatal("cleaning up the old store closed the shared database")
	}
	if _, err := old.Get(ctx, "lock/alice"); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("old store after Cleanup: err = %v, want ErrClosed", err)
	}
	n, err := next.Incr(ctx, "lock/alice", 1, time.Time{})
	if err != nil || n != 4 {
		t.Errorf("new store Incr = %d, %v; want 4", n, err)
	}

	if err := next.Cleanup(); err != nil {
		t.Fatalf("cleaning up new store: %v", err)
	}
	if !shared.db.IsClosed() {
		t.Error("the last Cleanup left the database open")
	}
}

func TestRestartKeepsState(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	exp := time.Now().Add(time.Hour).Round(0)

	s := &Store{Dir: dir}
	if err := s.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := s.Incr(ctx, "lock/alice", 1, exp); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, "user/alice", []byte("enrollment"), time.Time{}, true); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "sess/1", []byte("session"), exp, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Cleanup(); err != nil {
		t.Fatal(err)
	}

	s = provision(t, &Store{Dir: dir})
	n, err := s.Incr(ctx, "lock/alice", 1, time.Time{})
	if err != nil || n != 4 {
		t.Errorf("counter after restart = %d, %v; want 4", n, err)
	}
	tests := []struct {
		key  string
		want string
		exp  time.Time
	}{
		{"user/alice", "enrollment", time.Time{}},
		{"sess/1", "session", exp},
		{"lock/alice", string(encodeCounter(4)), exp},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			rec, err := s.Get(ctx, tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if string(rec.Value) != tt.want || !rec.ExpiresAt.Equal(tt.exp) {
				t.Errorf("Get = %q %v, want %q %v", rec.Value, rec.ExpiresAt, tt.want, tt.exp)
			}
		})
	}
}

func TestClosedStoreFailsClosed(t *testing.T) {
	ctx := context.Background()
	provisioned := &Store{Dir: t.TempDir()}
	if err := provisioned.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	if err := provisioned.Put(ctx, "k", []byte("v"), time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	db := provisioned.db
	for i := range 2 { // Cleanup is idempotent
		if err := provisioned.Cleanup(); err != nil {
			t.Fatalf("Cleanup #%d: %v", i+1, err)
		}
	}
	if !db.db.IsClosed() {
		t.Fatal("the database is still open")
	}

	update := func(storage.Record, bool) ([]byte, time.Time, storage.Op, error) {
		return []byte("x"), time.Time{}, storage.Write, nil
	}
	methods := []struct {
		name string
		call func(s *Store) error
	}{
		{"Get", func(s *Store) error { _, err := s.Get(ctx, "k"); return err }},
		{"Put", func(s *Store) error { return s.Put(ctx, "k", []byte("v"), time.Time{}, false) }},
		{"Put durable", func(s *Store) error { return s.Put(ctx, "k", []byte("v"), time.Time{}, true) }},
		{"Delete", func(s *Store) error { return s.Delete(ctx, "k") }},
		{"Update", func(s *Store) error { return s.Update(ctx, "k", update) }},
		{"Incr", func(s *Store) error { _, err := s.Incr(ctx, "k", 1, time.Time{}); return err }},
		{"List", func(s *Store) error { _, err := s.List(ctx, "", 0, false); return err }},
		{"List reverse", func(s *Store) error { _, err := s.List(ctx, "", 0, true); return err }},
		{"DeletePrefix", func(s *Store) error { return s.DeletePrefix(ctx, "") }},
	}
	stores := []struct {
		name string
		s    *Store
	}{
		{"after Cleanup", provisioned},
		{"never provisioned", new(Store)},
	}
	for _, st := range stores {
		for _, m := range methods {
			t.Run(st.name+"/"+m.name, func(t *testing.T) {
				if err := m.call(st.s); !errors.Is(err, storage.ErrClosed) {
					t.Errorf("err = %v, want ErrClosed", err)
				}
			})
		}
	}
}

func TestCleanupAfterFailedProvision(t *testing.T) {
	dir := t.TempDir()
	holder, err := badgerdb.Open(badgerdb.DefaultOptions(dir).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}

	s := &Store{Dir: dir}
	if err := s.Provision(caddyContext(t)); err == nil {
		t.Fatal("Provision succeeded on a locked directory")
	}
	for i := range 2 {
		if err := s.Cleanup(); err != nil {
			t.Errorf("Cleanup #%d after failed Provision: %v", i+1, err)
		}
	}
	if err := s.Put(context.Background(), "k", nil, time.Time{}, false); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Put after failed Provision: err = %v, want ErrClosed", err)
	}

	// The failed open left nothing in the pool: once the lock is free the
	// directory opens.
	if err := holder.Close(); err != nil {
		t.Fatal(err)
	}
	provision(t, &Store{Dir: dir})
}

// lockHelperEnv makes the test binary act as a second Caddy process that
// holds the store directory named by the variable.
const lockHelperEnv = "MFA_BADGER_LOCK_HELPER_DIR"

func TestSecondProcessGetsClearError(t *testing.T) {
	if dir := os.Getenv(lockHelperEnv); dir != "" {
		holdLock(t, dir)
		return
	}

	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestSecondProcessGetsClearError$")
	cmd.Env = append(os.Environ(), lockHelperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close() // tells the helper to let go
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper process: %v", err)
		}
	}()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "locked\n" {
		t.Fatalf("helper process said %q, %v", line, err)
	}
	go io.Copy(io.Discard, stdout)

	s := &Store{Dir: dir}
	err = s.Provision(caddyContext(t))
	if err == nil {
		s.Cleanup()
		t.Fatal("Provision succeeded while another process holds the directory")
	}
	defer s.Cleanup()
	t.Logf("Provision: %v", err)
	resolved, _ := filepath.EvalSymlinks(dir)
	for _, want := range []string{resolved, "in use by another process", "caddy reload"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// holdLock provisions a store in dir, says "locked" and holds it until
// stdin closes.
func holdLock(t *testing.T, dir string) {
	s := &Store{Dir: dir}
	if err := s.Provision(caddyContext(t)); err != nil {
		t.Fatalf("helper: %v", err)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	if err := s.Cleanup(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

func TestValueLogGCStopsOnCleanup(t *testing.T) {
	s := &Store{Dir: t.TempDir(), gcInterval: 10 * time.Millisecond}
	if err := s.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}
	db := s.db
	select {
	case <-db.gcRuns:
	case <-time.After(10 * time.Second):
		t.Fatal("value-log GC never ran")
	}
	if err := s.Cleanup(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-db.gcDone:
	default:
		t.Fatal("value-log GC goroutine still running after Cleanup")
	}
}

func TestCleanupDuringUse(t *testing.T) {
	ctx := context.Background()
	s := &Store{Dir: t.TempDir()}
	if err := s.Provision(caddyContext(t)); err != nil {
		t.Fatal(err)
	}

	// Calls racing with the last Cleanup either finish or fail with
	// ErrClosed; none reaches the closed database.
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			<-start
			for j := range 50 {
				key := fmt.Sprintf("thr/%d", i)
				var err error
				switch j % 3 {
				case 0:
					_, err = s.Incr(ctx, key, 1, time.Time{})
				case 1:
					_, err = s.List(ctx, "thr/", 0, j%2 == 0)
				case 2:
					err = s.Put(ctx, key+"/p", []byte("v"), time.Time{}, true)
				}
				if err != nil && !errors.Is(err, storage.ErrClosed) {
					t.Errorf("err = %v, want nil or ErrClosed", err)
				}
			}
		})
	}
	close(start)
	if err := s.Cleanup(); err != nil {
		t.Error(err)
	}
	wg.Wait()
}
