package delivery

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
)

// Defaults of Options.
const (
	DefaultWorkers    = 2
	DefaultRetries    = 3
	DefaultWait       = 5 * time.Second
	DefaultQueueSize  = 1000
	DefaultBackoff    = 200 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	DefaultBatch      = 16
)

// Errors a Deliver call can wrap, beside authenticators.ErrDeliveryFailed
// which every failure wraps.
var (
	// ErrQueueFull means the queue holds QueueSize messages already.
	ErrQueueFull = errors.New("queue full")
	// ErrStopped means the queue was stopped before the message was sent.
	ErrStopped = errors.New("queue stopped")
)

// Worker sends payloads one at a time. Each queue worker owns one Worker,
// so implementations may keep state between payloads without locking.
type Worker[T any] interface {
	// Send makes one delivery attempt. ctx is cancelled when the queue
	// stops. An error wrapped with Permanent is not retried.
	Send(ctx context.Context, payload T) error
	// Close releases the worker's resources; it is called once, when the
	// queue stops.
	Close() error
}

// BatchWorker is a Worker that can also send several payloads in one go,
// as an SMTP worker pipelines the messages waiting in the queue on its
// connection. A queue worker whose Worker implements it takes the job it
// got together with the jobs already waiting, without waiting for more,
// up to Options.Batch, and sends them with one SendBatch call.
type BatchWorker[T any] interface {
	Worker[T]
	// SendBatch makes one delivery attempt of each payload and returns
	// their outcomes, one per payload, in order, each as Send would
	// return it. ctx is cancelled when the queue stops.
	SendBatch(ctx context.Context, payloads []T) []error
}

// Job is one message to deliver.
type Job[T any] struct {
	// ChallengeID, User and To are copied into every DeliveryResult. To
	// must already be masked.
	ChallengeID string
	User        string
	To          string
	// Payload is what the Worker sends.
	Payload T
}

// Options configure a Queue. Zero values take the defaults above.
type Options[T any] struct {
	// Method names the channel in reports ("email", "sms").
	Method string
	// Workers is the number of concurrent workers. Default: 2.
	Workers int
	// Retries is how many times a transient failure is retried. Default:
	// 3; a negative value means no retry.
	Retries int
	// Wait is how long Deliver waits for the outcome. Default: 5s.
	Wait time.Duration
	// QueueSize bounds the number of waiting messages. Default: 1000.
	QueueSize int
	// Backoff is the wait before the first retry; it doubles with each
	// further retry. Default: 200ms.
	Backoff time.Duration
	// MaxBackoff caps the wait between retries. Default: 30s.
	MaxBackoff time.Duration
	// Batch bounds how many jobs a BatchWorker sends at once. Default:
	// 16.
	Batch int
	// NewWorker creates the state of one worker. Required.
	NewWorker func() (Worker[T], error)
	// Report, if not nil, receives every attempt. It is called from the
	// worker goroutines. A result has Permanent set when the attempt failed
	// and no further attempt will be made (a permanent error, the last
	// retry, a full or stopped queue).
	Report func(authenticators.DeliveryResult)
}

// Queue delivers jobs with a fixed pool of workers.
type Queue[T any] struct {
	opts Options[T]
	jobs chan *job[T]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.RWMutex
	stopped bool
	once    sync.Once
}

type job[T any] struct {
	Job[T]
	done chan error // buffered: the worker never blocks on it
}

// New creates the workers and starts the queue.
func New[T any](opts Options[T]) (*Queue[T], error) {
	if opts.NewWorker == nil {
		return nil, errors.New("delivery queue needs a worker constructor")
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultWorkers
	}
	if opts.Retries == 0 {
		opts.Retries = DefaultRetries
	} else if opts.Retries < 0 {
		opts.Retries = 0
	}
	if opts.Wait <= 0 {
		opts.Wait = DefaultWait
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Backoff <= 0 {
		opts.Backoff = DefaultBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.Batch <= 0 {
		opts.Batch = DefaultBatch
	}

	workers := make([]Worker[T], 0, opts.Workers)
	for range opts.Workers {
		w, err := opts.NewWorker()
		if err != nil {
			for _, w := range workers {
				_ = w.Close()
			}
			return nil, fmt.Errorf("creating delivery worker: %w", err)
		}
		workers = append(workers, w)
	}

	q := &Queue[T]{
		opts: opts,
		jobs: make(chan *job[T], opts.QueueSize),
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	q.wg.Add(len(workers))
	for _, w := range workers {
		go q.run(w)
	}
	return q, nil
}

// Deliver queues j and waits up to Wait for the outcome. It returns nil
// when the message was sent, or when it is still queued or being retried
// once Wait has passed or ctx is done. It returns an error wrapping
// authenticators.ErrDeliveryFailed when the message will not be sent: a
// permanent failure, all retries failed, a full or stopped queue.
func (q *Queue[T]) Deliver(ctx context.Context, j Job[T]) error {
	jb := &job[T]{Job: j, done: make(chan error, 1)}

	q.mu.RLock()
	if q.stopped {
		q.mu.RUnlock()
		return fmt.Errorf("%w: %w", authenticators.ErrDeliveryFailed, ErrStopped)
	}
	select {
	case q.jobs <- jb:
		q.mu.RUnlock()
	default:
		q.mu.RUnlock()
		q.report(jb, 0, ErrQueueFull, true, 0)
		return fmt.Errorf("%w: %w", authenticators.ErrDeliveryFailed, ErrQueueFull)
	}

	timer := time.NewTimer(q.opts.Wait)
	defer timer.Stop()
	select {
	case err := <-jb.done:
		return err
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return nil
	}
}

// Stop stops the workers, waits for them to return and fails the jobs
// still queued. An attempt in progress is cancelled through its context.
// Stop is idempotent.
func (q *Queue[T]) Stop() {
	q.once.Do(func() {
		q.mu.Lock()
		q.stopped = true
		q.mu.Unlock()

		q.cancel()
		q.wg.Wait()

		for {
			select {
			case jb := <-q.jobs:
				q.report(jb, 0, ErrStopped, true, 0)
				jb.done <- fmt.Errorf("%w: %w", authenticators.ErrDeliveryFailed, ErrStopped)
			default:
				return
			}
		}
	})
}

func (q *Queue[T]) run(w Worker[T]) {
	defer q.wg.Done()
	defer func() { _ = w.Close() }()
	bw, _ := w.(BatchWorker[T])
	batch := make([]*job[T], 0, q.opts.Batch)
	var payloads []T
	if bw != nil {
		payloads = make([]T, 0, q.opts.Batch)
	}
	for {
		// A stop request wins over waiting jobs.
		if q.ctx.Err() != nil {
			return
		}
		select {
		case <-q.ctx.Done():
			return
		case jb := <-q.jobs:
			batch = append(batch[:0], jb)
			if bw != nil {
				batch = q.take(batch)
			}
			q.process(w, bw, batch, payloads)
			clear(batch)
			clear(payloads[:cap(payloads)])
		}
	}
}

// take adds the jobs already waiting to batch, without waiting for more,
// up to Batch; none once the queue is stopping.
func (q *Queue[T]) take(batch []*job[T]) []*job[T] {
	for len(batch) < q.opts.Batch && q.ctx.Err() == nil {
		select {
		case jb := <-q.jobs:
			batch = append(batch, jb)
		default:
			return batch
		}
	}
	return batch
}

// process makes the attempts of the jobs of batch and tells each waiting
// Deliver its outcome. Each attempt sends the jobs still to send together
// (SendBatch, when bw is not nil and there are several) or alone (Send);
// each job's outcome is its own: a job that was sent or failed for good
// is done, the others are retried after the backoff of their attempt,
// which they share, since they were first sent together. payloads is
// room for the payloads of a batch.
func (q *Queue[T]) process(w Worker[T], bw BatchWorker[T], batch []*job[T], payloads []T) {
	for attempt := 1; ; attempt++ {
		start := time.Now()
		var errs []error
		if len(batch) == 1 || bw == nil {
			errs = []error{w.Send(q.ctx, batch[0].Payload)}
		} else {
			payloads = payloads[:0]
			for _, jb := range batch {
				payloads = append(payloads, jb.Payload)
			}
			errs = bw.SendBatch(q.ctx, payloads)
			if len(errs) != len(batch) {
				err := Permanent(fmt.Errorf("delivery worker returned %d outcomes for %d messages", len(errs), len(batch)))
				errs = make([]error, len(batch))
				for i := range errs {
					errs[i] = err
				}
			}
		}
		latency := time.Since(start)

		retry := batch[:0]
		for i, jb := range batch {
			if !q.settle(jb, attempt, errs[i], latency) {
				retry = append(retry, jb)
			}
		}
		clear(batch[len(retry):])
		batch = retry
		if len(batch) == 0 {
			return
		}

		timer := time.NewTimer(q.backoff(attempt))
		select {
		case <-timer.C:
		case <-q.ctx.Done():
			timer.Stop()
			for _, jb := range batch {
				q.report(jb, attempt+1, ErrStopped, true, 0)
				jb.done <- fmt.Errorf("%w: %w", authenticators.ErrDeliveryFailed, ErrStopped)
			}
			return
		}
	}
}

// settle reports the outcome err of a job's attempt and, when the job is
// done (sent, failed for good, or the queue is stopping), tells the
// waiting Deliver; it returns false when the job is to be retried.
func (q *Queue[T]) settle(jb *job[T], attempt int, err error, latency time.Duration) bool {
	if err == nil {
		q.report(jb, attempt, nil, false, latency)
		jb.done <- nil
		return true
	}
	final := IsPermanent(err) || attempt > q.opts.Retries || q.ctx.Err() != nil
	q.report(jb, attempt, err, final, latency)
	if final {
		jb.done <- fmt.Errorf("%w: %w", authenticators.ErrDeliveryFailed, err)
	}
	return final
}

// backoff is the wait after the given failed attempt: Backoff, then twice
// as long each time, at most MaxBackoff.
func (q *Queue[T]) backoff(attempt int) time.Duration {
	d := q.opts.Backoff
	for i := 1; i < attempt; i++ {
		d *= 2
		if d >= q.opts.MaxBackoff {
			return q.opts.MaxBackoff
		}
	}
	return min(d, q.opts.MaxBackoff)
}

func (q *Queue[T]) report(jb *job[T], attempt int, err error, final bool, latency time.Duration) {
	if q.opts.Report == nil {
		return
	}
	r := authenticators.DeliveryResult{
		Time:        time.Now(),
		ChallengeID: jb.ChallengeID,
		Method:      q.opts.Method,
		User:        jb.User,
		To:          jb.To,
		Attempt:     attempt,
		OK:          err == nil,
		Latency:     latency,
	}
	if err != nil {
		r.Permanent = final
		r.Error = err.Error()
	}
	q.opts.Report(r)
}
