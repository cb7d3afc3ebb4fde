package delivery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
)

// batchWorker is a BatchWorker whose payloads name their fate: the
// script of a payload gives the outcomes of its attempts in turn (nil once
// exhausted). It records every call. Send of "gate" waits for gate; with
// hold, SendBatch waits until the queue stops.
type batchWorker struct {
	gate chan struct{}
	hold bool

	mu     sync.Mutex
	script map[string][]error
	calls  []batchCall
	closed int
}

type batchCall struct {
	payloads []string
	batch    bool // SendBatch, not Send
	at       time.Time
}

func (w *batchWorker) outcome(p string) error {
	var err error
	if s := w.script[p]; len(s) > 0 {
		err, w.script[p] = s[0], s[1:]
	}
	return err
}

func (w *batchWorker) Send(ctx context.Context, p string) error {
	w.mu.Lock()
	w.calls = append(w.calls, batchCall{payloads: []string{p}, at: time.Now()})
	err := w.outcome(p)
	w.mu.Unlock()
	if p == "gate" {
		select {
		case <-w.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return err
}

func (w *batchWorker) SendBatch(ctx context.Context, ps []string) []error {
	w.mu.Lock()
	w.calls = append(w.calls, batchCall{payloads: slices.Clone(ps), batch: true, at: time.Now()})
	errs := make([]error, len(ps))
	for i, p := range ps {
		errs[i] = w.outcome(p)
	}
	w.mu.Unlock()
	if w.hold {
		<-ctx.Done()
		for i := range errs {
			errs[i] = ctx.Err()
		}
	}
	return errs
}

func (w *batchWorker) Close() error {
	w.mu.Lock()
	w.closed++
	w.mu.Unlock()
	return nil
}

func (w *batchWorker) snapshot() []batchCall {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

// batchQueue starts a queue of one batchWorker and returns it with the
// reports it made, by payload (the payload is the job's challenge ID).
func batchQueue(t *testing.T, w *batchWorker, opts Options[string]) (*Queue[string], func() map[string][]authenticators.DeliveryResult) {
	t.Helper()
	var mu sync.Mutex
	reports := map[string][]authenticators.DeliveryResult{}
	opts.Method = "email"
	opts.Workers = 1
	opts.NewWorker = func() (Worker[string], error) { return w, nil }
	opts.Report = func(r authenticators.DeliveryResult) {
		mu.Lock()
		reports[r.ChallengeID] = append(reports[r.ChallengeID], r)
		mu.Unlock()
	}
	q, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return q, func() map[string][]authenticators.DeliveryResult {
		mu.Lock()
		defer mu.Unlock()
		out := map[string][]authenticators.DeliveryResult{}
		for k, v := range reports {
			out[k] = slices.Clone(v)
		}
		return out
	}
}

// deliverAll queues the payloads in order while the worker is held by
// "gate", lets it go, waits until every job is done (retries included)
// and returns each Deliver's outcome.
func deliverAll(t *testing.T, q *Queue[string], w *batchWorker, payloads []string) map[string]error {
	t.Helper()
	var mu sync.Mutex
	out := map[string]error{}
	deliver := func(p string) {
		err := q.Deliver(context.Background(), Job[string]{ChallengeID: p, Payload: p})
		mu.Lock()
		out[p] = err
		mu.Unlock()
	}
	go deliver("gate")
	synctest.Wait() // the worker holds the gate
	for _, p := range payloads {
		go deliver(p)
		synctest.Wait() // queued, in this order
	}
	close(w.gate)
	time.Sleep(time.Hour)
	synctest.Wait()
	mu.Lock()
	defer mu.Unlock()
	return out
}

// A worker that sends batches gets the jobs waiting in the queue
// together, in their order, at most Batch at a time; a job that arrives
// alone goes through Send.
func TestBatchTakesWaitingJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &batchWorker{gate: make(chan struct{}), script: map[string][]error{}}
		q, reports := batchQueue(t, w, Options[string]{Wait: time.Minute})
		var payloads []string
		for i := range DefaultBatch + 4 {
			payloads = append(payloads, fmt.Sprintf("m%02d", i))
		}
		outs := deliverAll(t, q, w, payloads)
		if err := q.Deliver(t.Context(), Job[string]{ChallengeID: "alone", Payload: "alone"}); err != nil {
			t.Fatal(err)
		}
		q.Stop()

		calls := w.snapshot()
		want := []batchCall{
			{payloads: []string{"gate"}},
			{payloads: payloads[:DefaultBatch], batch: true},
			{payloads: payloads[DefaultBatch:], batch: true},
			{payloads: []string{"alone"}},
		}
		if len(calls) != len(want) {
			t.Fatalf("calls %+v, want %+v", calls, want)
		}
		for i := range want {
			if !slices.Equal(calls[i].payloads, want[i].payloads) || calls[i].batch != want[i].batch {
				t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
			}
		}
		r := reports()
		for _, p := range append(payloads, "gate", "alone") {
			if outs[p] != nil {
				t.Errorf("Deliver(%s) = %v", p, outs[p])
			}
			if len(r[p]) != 1 || !r[p][0].OK || r[p][0].Attempt != 1 {
				t.Errorf("reports of %s: %+v", p, r[p])
			}
		}
		if w.closed != 1 {
			t.Errorf("worker closed %d times", w.closed)
		}
	})
}

// Each job of a batch has its own outcome: sent, failed for good, or
// retried with backoff, as a job sent alone; the jobs to retry go again
// together, and the last one alone.
func TestBatchOutcomesPerJob(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bad := Permanent(errors.New("550 no such user"))
		w := &batchWorker{gate: make(chan struct{}), script: map[string][]error{
			"perm":  {bad},
			"flaky": {errTransient},
			"down":  {errTransient, errTransient, errTransient},
		}}
		q, reports := batchQueue(t, w, Options[string]{Wait: time.Minute, Retries: 2})
		defer q.Stop()
		outs := deliverAll(t, q, w, []string{"ok", "perm", "flaky", "down"})

		for p, wantErr := range map[string]bool{"ok": false, "perm": true, "flaky": false, "down": true} {
			if got := outs[p] != nil; got != wantErr {
				t.Errorf("Deliver(%s) = %v, want error %v", p, outs[p], wantErr)
			}
			if outs[p] != nil && !errors.Is(outs[p], authenticators.ErrDeliveryFailed) {
				t.Errorf("Deliver(%s) = %v, does not wrap ErrDeliveryFailed", p, outs[p])
			}
		}
		calls := w.snapshot()
		want := []batchCall{
			{payloads: []string{"gate"}},
			{payloads: []string{"ok", "perm", "flaky", "down"}, batch: true},
			{payloads: []string{"flaky", "down"}, batch: true},
			{payloads: []string{"down"}},
		}
		if len(calls) != len(want) {
			t.Fatalf("calls %+v, want %+v", calls, want)
		}
		for i := range want {
			if !slices.Equal(calls[i].payloads, want[i].payloads) || calls[i].batch != want[i].batch {
				t.Errorf("call %d = %+v, want %+v", i, calls[i], want[i])
			}
		}
		// The backoff of each retry is the one a job sent alone waits.
		if d := calls[2].at.Sub(calls[1].at); d != DefaultBackoff {
			t.Errorf("first retry after %v, want %v", d, DefaultBackoff)
		}
		if d := calls[3].at.Sub(calls[2].at); d != 2*DefaultBackoff {
			t.Errorf("second retry after %v, want %v", d, 2*DefaultBackoff)
		}

		type rep struct {
			ok, permanent bool
		}
		wantReports := map[string][]rep{
			"ok":    {{ok: true}},
			"perm":  {{permanent: true}},
			"flaky": {{}, {ok: true}},
			"down":  {{}, {}, {permanent: true}},
		}
		r := reports()
		for p, wr := range wantReports {
			if len(r[p]) != len(wr) {
				t.Errorf("reports of %s: %+v, want %d", p, r[p], len(wr))
				continue
			}
			for i, x := range r[p] {
				if x.Attempt != i+1 || x.OK != wr[i].ok || x.Permanent != wr[i].permanent || x.ChallengeID != p {
					t.Errorf("report %d of %s = %+v, want %+v", i, p, x, wr[i])
				}
			}
		}
	})
}

// Stopping the queue while a batch is being sent fails each of its jobs
// with the cancelled attempt's error, fails the jobs still queued, and
// leaves no goroutine behind.
func TestBatchStopInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := &batchWorker{gate: make(chan struct{}), hold: true, script: map[string][]error{}}
		q, reports := batchQueue(t, w, Options[string]{Wait: time.Minute, Batch: 3})
		var payloads []string
		for i := range 5 {
			payloads = append(payloads, fmt.Sprintf("m%d", i))
		}
		outs := make(chan error, len(payloads))
		go func() { _ = q.Deliver(context.Background(), Job[string]{ChallengeID: "gate", Payload: "gate"}) }()
		synctest.Wait()
		for _, p := range payloads {
			go func() { outs <- q.Deliver(context.Background(), Job[string]{ChallengeID: p, Payload: p}) }()
			synctest.Wait()
		}
		close(w.gate)
		synctest.Wait() // the batch of three is in flight
		if calls := w.snapshot(); len(calls) != 2 || !slices.Equal(calls[1].payloads, payloads[:3]) {
			t.Fatalf("calls %+v, want the gate and a batch of three", calls)
		}
		q.Stop()
		for range payloads {
			if err := <-outs; !errors.Is(err, authenticators.ErrDeliveryFailed) {
				t.Errorf("Deliver() = %v, want a failure", err)
			}
		}
		r := reports()
		for i, p := range payloads {
			want := context.Canceled.Error()
			if i >= 3 {
				want = ErrStopped.Error()
			}
			if len(r[p]) != 1 || r[p][0].Error != want || !r[p][0].Permanent {
				t.Errorf("reports of %s: %+v, want one final %q", p, r[p], want)
			}
		}
		if calls := w.snapshot(); len(calls) != 2 {
			t.Errorf("calls after Stop: %+v", calls)
		}
	})
}
