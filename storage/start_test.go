package storage

import (
	"context"
	"errors"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// Without a config (a tool or a test provisions a module on its own)
// nothing will start the app, so OnStart runs the function at once.
func TestOnStartWithoutConfig(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	runs := 0
	s, err := OnStart(ctx, func() error { runs++; return nil })
	if err != nil || runs != 1 || !s.Done() {
		t.Fatalf("err %v, runs %d, done %v; want one run", err, runs, s.Done())
	}
	if err := s.Run(); err != nil || runs != 1 {
		t.Errorf("Run after success: err %v, runs %d; want no second run", err, runs)
	}

	boom := errors.New("boom")
	if _, err := OnStart(ctx, func() error { return boom }); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the start function's error", err)
	}
}

// A failed start runs again on the next Run; after Stop it never runs.
func TestStartRetriesUntilStopped(t *testing.T) {
	fail := true
	runs := 0
	s := &Start{fn: func() error {
		runs++
		if fail {
			return errors.New("not yet")
		}
		return nil
	}}
	if err := s.Run(); err == nil || s.Done() {
		t.Fatal("a failed start counts as done")
	}
	fail = false
	if err := s.Run(); err != nil || !s.Done() || runs != 2 {
		t.Fatalf("retry: err %v, done %v, runs %d", err, s.Done(), runs)
	}

	stopped := &Start{fn: func() error { runs++; return nil }}
	stopped.Stop()
	if err := stopped.Run(); !errors.Is(err, errStopped) || runs != 2 {
		t.Errorf("Run after Stop: err %v, runs %d; want errStopped and no run", err, runs)
	}

	var none *Start
	if err := none.Run(); err != nil || !none.Done() {
		t.Error("a nil Start has something to run")
	}
}

// The app runs what registered, in order, and stops at the first error.
func TestAppStartsInOrder(t *testing.T) {
	var order []int
	boom := errors.New("boom")
	app := new(App)
	for i := range 3 {
		app.starts = append(app.starts, &Start{fn: func() error {
			order = append(order, i)
			if i == 1 {
				return boom
			}
			return nil
		}})
	}
	if err := app.Start(); !errors.Is(err, boom) {
		t.Fatalf("Start: %v, want the second function's error", err)
	}
	if len(order) != 2 || order[0] != 0 || order[1] != 1 {
		t.Errorf("ran %v, want [0 1]", order)
	}
}
