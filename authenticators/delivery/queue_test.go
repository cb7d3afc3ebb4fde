package delivery

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
)

// scriptWorker answers each Send with the next error of its script (nil
// once the script is exhausted) and records when it was called.
type scriptWorker struct {
	mu     *sync.Mutex
	script *[]error
	calls  *[]time.Time
	block  chan struct{} // if not nil, Send waits on it or ctx
	closed *int
}

func (w scriptWorker) Send(ctx context.Context, _ string) error {
	w.mu.Lock()
	*w.calls = append(*w.calls, time.Now())
	var err error
	if len(*w.script) > 0 {
		err = (*w.script)[0]
		*w.script = (*w.script)[1:]
	}
	w.mu.Unlock()
	if w.block != nil {
		select {
		case <-w.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (w scriptWorker) Close() error {
	w.mu.Lock()
	*w.closed++
	w.mu.Unlock()
	return nil
}

type harness struct {
	mu      sync.Mutex
	script  []error
	calls   []time.Time
	closed  int
	results []authenticators.DeliveryResult
	block   chan struct{}
}

func (h *harness) options() Options[string] {
	return Options[string]{
		Method: "email",
		NewWorker: func() (Worker[string], error) {
			return scriptWorker{mu: &h.mu, script: &h.script, calls: &h.calls, block: h.block, closed: &h.closed}, nil
		},
		Report: func(r authenticators.DeliveryResult) {
			h.mu.Lock()
			h.results = append(h.results, r)
			h.mu.Unlock()
		},
	}
}

func (h *harness) snapshot() ([]authenticators.DeliveryResult, []time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]authenticators.DeliveryResult(nil), h.results...), append([]time.Time(nil), h.calls...)
}

var errTransient = errors.New("451 try again later")

func TestDeliverOutcomes(t *testing.T) {
	errBad := Permanent(errors.New("550 no such user"))
	tests := []struct {
		name      string
		retries   int
		script    []error
		wantErr   bool
		wantCalls int
	}{
		{name: "success", script: nil, wantCalls: 1},
		{name: "transient then success", script: []error{errTransient, errTransient}, wantCalls: 3},
		{name: "permanent", script: []error{errBad}, wantErr: true, wantCalls: 1},
		{name: "transient then permanent", script: []error{errTransient, errBad}, wantErr: true, wantCalls: 2},
		{name: "retries exhausted", script: []error{errTransient, errTransient, errTransient, errTransient}, wantErr: true, wantCalls: 4},
		{name: "no retry", retries: -1, script: []error{errTransient}, wantErr: true, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &harness{script: tt.script}
				opts := h.options()
				opts.Retries = tt.retries
				q, err := New(opts)
				if err != nil {
					t.Fatal(err)
				}
				defer q.Stop()
				err = q.Deliver(t.Context(), Job[string]{ChallengeID: "c1", User: "alice", To: "a***@e***.com", Payload: "m"})
				if got := err != nil; got != tt.wantErr {
					t.Fatalf("Deliver() = %v, want error %v", err, tt.wantErr)
				}
				if err != nil && !errors.Is(err, authenticators.ErrDeliveryFailed) {
					t.Errorf("error %v does not wrap ErrDeliveryFailed", err)
				}
				results, calls := h.snapshot()
				if len(calls) != tt.wantCalls || len(results) != tt.wantCalls {
					t.Fatalf("calls = %d, results = %d, want %d", len(calls), len(results), tt.wantCalls)
				}
				for i, r := range results {
					if r.Attempt != i+1 || r.Method != "email" || r.ChallengeID != "c1" || r.User != "alice" || r.To != "a***@e***.com" {
						t.Errorf("result %d = %+v", i, r)
					}
					last := i == len(results)-1
					if r.OK != (last && !tt.wantErr) {
						t.Errorf("result %d OK = %v", i, r.OK)
					}
					if r.Permanent != (last && tt.wantErr) {
						t.Errorf("result %d Permanent = %v", i, r.Permanent)
					}
				}
			})
		})
	}
}

func TestBackoffTiming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &harness{script: []error{errTransient, errTransient, errTransient}}
		opts := h.options()
		opts.Backoff = 200 * time.Millisecond
		opts.MaxBackoff = 500 * time.Millisecond
		q, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Stop()
		if err := q.Deliver(t.Context(), Job[string]{Payload: "m"}); err != nil {
			t.Fatalf("Deliver() = %v", err)
		}
		_, calls := h.snapshot()
		want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 500 * time.Millisecond}
		if len(calls) != len(want)+1 {
			t.Fatalf("got %d calls, want %d", len(calls), len(want)+1)
		}
		for i, w := range want {
			if got := calls[i+1].Sub(calls[i]); got != w {
				t.Errorf("wait before attempt %d = %v, want %v", i+2, got, w)
			}
		}
	})
}

func TestDeliverWaitsAtMostWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &harness{block: make(chan struct{})}
		opts := h.options()
		opts.Wait = 2 * time.Second
		q, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := q.Deliver(t.Context(), Job[string]{Payload: "m"}); err != nil {
			t.Fatalf("Deliver() = %v, want nil while still trying", err)
		}
		if got := time.Since(start); got != 2*time.Second {
			t.Errorf("Deliver waited %v, want 2s", got)
		}
		close(h.block)
		q.Stop()
	})
}

func TestDeliverReturnsWhenStillRetrying(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &harness{script: []error{errTransient, errTransient}}
		opts := h.options()
		opts.Wait = time.Second
		opts.Backoff = 10 * time.Second
		q, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		defer q.Stop()
		if err := q.Deliver(t.Context(), Job[string]{Payload: "m"}); err != nil {
			t.Fatalf("Deliver() = %v, want nil while retrying", err)
		}
		results, _ := h.snapshot()
		if len(results) != 1 || results[0].OK || results[0].Permanent {
			t.Fatalf("results = %+v, want one transient failure", results)
		}
		// The retries go on after Deliver returned.
		time.Sleep(time.Minute)
		synctest.Wait()
		results, _ = h.snapshot()
		if len(results) != 3 || !results[2].OK {
			t.Fatalf("results = %+v, want success on attempt 3", results)
		}
	})
}

func TestQueueFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &harness{block: make(chan struct{})}
		opts := h.options()
		opts.Workers = 1
		opts.QueueSize = 2
		opts.Wait = time.Millisecond
		q, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		// One job in the worker, two in the queue.
		for range 3 {
			if err := q.Deliver(t.Context(), Job[string]{Payload: "m"}); err != nil {
				t.Fatalf("Deliver() = %v", err)
			}
			synctest.Wait()
		}
		err = q.Deliver(t.Context(), Job[string]{Payload: "m"})
		if !errors.Is(err, authenticators.ErrDeliveryFailed) || !errors.Is(err, ErrQueueFull) {
			t.Fatalf("Deliver() = %v, want queue full", err)
		}
		results, _ := h.snapshot()
		if len(results) != 1 || results[0].Error != ErrQueueFull.Error() || !results[0].Permanent {
			t.Errorf("results = %+v, want the queue-full report", results)
		}
		close(h.block)
		q.Stop()
	})
}

func TestStopStopsWorkers(t *testing.T) {
	// synctest.Test fails if a goroutine started in the bubble is still
	// running when the function returns: Stop must leave none behind, also
	// with an attempt in progress, a retry waiting and jobs queued.
	synctest.Test(t, func(t *testing.T) {
		h := &harness{block: make(chan struct{})}
		opts := h.options()
		opts.Workers = 3
		opts.Wait = time.Millisecond
		q, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		for range 5 {
			_ = q.Deliver(t.Context(), Job[string]{Payload: "m"})
		}
		synctest.Wait()
		q.Stop()
		q.Stop() // idempotent
		if h.closed != 3 {
			t.Errorf("closed %d workers, want 3", h.closed)
		}
		err = q.Deliver(t.Context(), Job[string]{Payload: "m"})
		if !errors.Is(err, ErrStopped) || !errors.Is(err, authenticators.ErrDeliveryFailed) {
			t.Errorf("Deliver after Stop = %v, want stopped", err)
		}
		results, _ := h.snapshot()
		var stopped int
		for _, r := range results {
			if r.Error == ErrStopped.Error() || r.Error == context.Canceled.Error() {
				stopped++
			}
		}
		if stopped != 5 {
			t.Errorf("%d stopped reports, want 5: %+v", stopped, results)
		}
	})
}

func TestStopDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &harness{script: []error{errTransient}}
		opts := h.options()
		opts.Backoff = time.Hour
		opts.MaxBackoff = time.Hour
		opts.Wait = time.Millisecond
		q, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- q.Deliver(context.Background(), Job[string]{Payload: "m"}) }()
		synctest.Wait()
		start := time.Now()
		q.Stop()
		if time.Since(start) != 0 {
			t.Errorf("Stop waited for the backoff")
		}
		<-done
		results, _ := h.snapshot()
		if len(results) != 2 || results[1].Error != ErrStopped.Error() {
			t.Errorf("results = %+v", results)
		}
	})
}

func TestNewWorkerError(t *testing.T) {
	var closed int
	n := 0
	_, err := New(Options[string]{
		Workers: 3,
		NewWorker: func() (Worker[string], error) {
			n++
			if n == 3 {
				return nil, errors.New("boom")
			}
			var mu sync.Mutex
			return scriptWorker{mu: &mu, script: new([]error), calls: new([]time.Time), closed: &closed}, nil
		},
	})
	if err == nil {
		t.Fatal("New() succeeded")
	}
	if closed != 2 {
		t.Errorf("closed %d workers, want 2", closed)
	}
}

func TestPermanent(t *testing.T) {
	base := errors.New("x")
	if IsPermanent(base) || IsPermanent(nil) || Permanent(nil) != nil {
		t.Fatal("unexpected permanence")
	}
	p := Permanent(base)
	if !IsPermanent(p) || !errors.Is(p, base) || p.Error() != "x" {
		t.Fatalf("Permanent(x) = %v", p)
	}
	if !IsPermanent(errors.Join(errors.New("y"), p)) {
		t.Error("wrapped permanent not seen")
	}
}
