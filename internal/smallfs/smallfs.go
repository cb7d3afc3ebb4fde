//go:build unix

// Package smallfs gives tests a small filesystem of their own (a tmpfs of a
// given size), so they can fill it and watch what a store does when its
// disk is full.
//
// Mounting needs root, which CI has. Elsewhere the tests that need it are
// skipped with the reason; under CI=true they fail instead, so a missing
// capability cannot hide a broken guarantee.
package smallfs

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// Mount mounts a tmpfs of size bytes on a fresh directory and unmounts it
// when the test ends.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "smallfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mounting a %d-byte tmpfs (needs root): %v: %s", size, err, out)
		}
		t.Skipf("cannot mount a tmpfs here (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("unmounting %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Free returns the bytes still free for writing under dir.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize) //nolint:unconvert // field types differ by platform
}

// Fill writes a file into dir until at most leave bytes stay free, and
// returns its path; removing it frees the space again.
func Fill(t testing.TB, dir string, leave int64) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler-")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for Free(t, dir) > leave {
		n := min(int64(len(chunk)), Free(t, dir)-leave)
		if _, err := f.Write(chunk[:n]); err != nil {
			t.Fatalf("filling %s: %v", dir, err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}
