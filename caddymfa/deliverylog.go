package caddymfa

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/storage"
)

// Delivery log bounds: entries live a week, and at most maxLogEntries are
// kept.
const (
	maxLogEntries = 1000
	logTTL        = 7 * 24 * time.Hour
)

// keyLogSeq counts every entry ever written; entry n lives in slot
// n mod max of the log (keyLog + slot), overwriting the entry written max
// entries before it. The log is bounded by its keys alone: no write lists
// it, so a delivery costs the same after a million sign-ins as after one.
const keyLogSeq = "meta/log_seq"

// logFlushDelay is how long a delivery's log entry waits in memory for
// the entries of other deliveries to share its store write. Under load
// the log then costs one store write (the sequence and the slots) per
// few milliseconds, not one per delivery; a crash (kill -9, power) loses
// the entries of the last few milliseconds, which no guarantee rests on:
// a failed delivery kills its challenge before its entry is queued
// (SECURITY.md I41), and the zap lines and metrics are written at once.
const logFlushDelay = 5 * time.Millisecond

// deliveryLog keeps every delivery attempt in the store (the seeds' async
// log) so an operator can see why a message did not arrive. It is a ring of
// max slots, shared by every handler on the store.
//
// Once started, entries go to the store through one writer goroutine
// that gathers what arrives within logFlushDelay into one write; reading
// the log first waits for the entries recorded before the read, so the
// admin API shows every delivery. A log that is not started (or is
// closed) writes each entry at once.
type deliveryLog struct {
	store  storage.Store
	logger *zap.Logger
	max    int
	// failed learns of every challenge whose message will not arrive.
	failed func(ctx context.Context, challengeID string)
	// metrics counts the attempts and their latency.
	metrics *metricSet

	mu      sync.Mutex
	running bool
	pending []authenticators.DeliveryResult // waiting for the writer, oldest first
	queued  uint64                          // entries handed to the writer so far
	written uint64                          // of those, written (or given up on)
	moved   chan struct{}                   // closed (and replaced) when written moves
	wake    chan struct{}                   // the writer has entries
	full    chan struct{}                   // ... and should not wait for more
	stop    chan struct{}
	done    chan struct{}

	// seq is the log's sequence number as this log last wrote or saw
	// it: the guess of deliveryLog.write.
	seq atomic.Int64
}

// logEntry is one slot of the ring: the attempt and its sequence number,
// by which a reader tells it from an older entry the slot held before.
type logEntry struct {
	Seq int64 `json:"seq"`
	authenticators.DeliveryResult
}

// slotKey names the slot of entry seq.
func (l *deliveryLog) slotKey(seq int64) string {
	return keyLog + strconv.FormatInt((seq-1)%int64(l.max), 10)
}

// start starts the writer; close stops it.
func (l *deliveryLog) start() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.running {
		return
	}
	l.running = true
	l.moved = make(chan struct{})
	l.wake, l.full = make(chan struct{}, 1), make(chan struct{}, 1)
	l.stop, l.done = make(chan struct{}), make(chan struct{})
	go l.run(l.wake, l.full, l.stop, l.done)
}

// close writes the entries still waiting and stops the writer; entries
// recorded afterwards are written at once.
func (l *deliveryLog) close() {
	l.mu.Lock()
	if !l.running {
		l.mu.Unlock()
		return
	}
	l.running = false
	stop, done := l.stop, l.done
	l.mu.Unlock()
	close(stop)
	<-done
}

// run is the writer: it waits for an entry, lets others join it for
// logFlushDelay (unless a batch is full or the log is read), and writes
// them all.
func (l *deliveryLog) run(wake, full, stop, done chan struct{}) {
	defer close(done)
	for {
		select {
		case <-wake:
		case <-stop:
			l.writePending()
			return
		}
		t := time.NewTimer(logFlushDelay)
		select {
		case <-t.C:
		case <-full:
		case <-stop:
		}
		t.Stop()
		l.writePending()
	}
}

// batchSize is how many entries one store write takes: distinct slots,
// and with the sequence at most storage.MaxUpdateKeys keys.
func (l *deliveryLog) batchSize() int {
	return min(storage.MaxUpdateKeys-1, l.max)
}

// record stores one attempt. Addresses arrive masked; codes never arrive.
func (l *deliveryLog) record(res authenticators.DeliveryResult) {
	ctx := context.Background()
	if res.Time.IsZero() {
		res.Time = time.Now()
	}
	// The channel logs failures (error, or warn before a retry); a
	// success it logs only at debug, so the info line is here.
	if res.OK {
		if ce := l.logger.Check(zap.InfoLevel, "delivery attempt"); ce != nil {
			ce.Write(zap.String("method", res.Method), zap.String("to", res.To), zap.Int("attempt", res.Attempt), zap.Duration("latency", res.Latency))
		}
	}
	l.metrics.delivery(res.Method, res.OK, res.Latency)
	if !res.OK && res.Permanent && res.ChallengeID != "" && l.failed != nil {
		l.failed(ctx, res.ChallengeID)
	}
	l.mu.Lock()
	if !l.running {
		l.mu.Unlock()
		l.write([]authenticators.DeliveryResult{res})
		return
	}
	if len(l.pending) >= l.max {
		// The store is not keeping up; the ring would overwrite the
		// oldest entry with this one anyway.
		l.pending = l.pending[1:]
		l.written++
	}
	l.pending = append(l.pending, res)
	l.queued++
	n := len(l.pending)
	l.mu.Unlock()
	signal(l.wake)
	if n >= l.batchSize() {
		signal(l.full)
	}
}

// signal wakes the one waiter on a 1-buffered channel, if it is not
// awake already.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// writePending writes the entries waiting, oldest first.
func (l *deliveryLog) writePending() {
	l.mu.Lock()
	batch := l.pending
	l.pending = nil
	l.mu.Unlock()
	for len(batch) > 0 {
		n := min(len(batch), l.batchSize())
		l.write(batch[:n])
		batch = batch[n:]
		l.mu.Lock()
		l.written += uint64(n)
		close(l.moved)
		l.moved = make(chan struct{})
		l.mu.Unlock()
	}
}

// write stores entries (at most batchSize), numbered on from every
// handler's entries, in one store operation: the sequence number and
// their slots. The slots follow from the sequence, which that operation
// reads, so the keys are named from a guess, the sequence this log last
// saw: it is right unless another handler on the store wrote meanwhile,
// and then the operation changes nothing and is tried again with the
// sequence it found. Either way the sequence and the slots are written
// together, so two handlers' entries never share a slot. Where handlers
// keep writing between the tries, the entries take a range of the
// sequence (Incr) and then fill its slots, in two writes.
func (l *deliveryLog) write(entries []authenticators.DeliveryResult) {
	ctx := context.Background()
	err := l.writeGuessed(ctx, entries)
	if errors.Is(err, errSeqMoved) {
		n := int64(len(entries))
		var last int64
		if last, err = l.store.Incr(ctx, keyLogSeq, n, time.Time{}); err == nil {
			l.seq.Store(last)
			err = l.putSlots(ctx, last-n+1, entries)
		}
	}
	if err != nil {
		if errors.Is(err, storage.ErrClosed) {
			// Results that arrive while the config is being unloaded.
			l.logger.Debug("delivery log closed; entries not kept", zap.Int("entries", len(entries)))
			return
		}
		l.logger.Error("writing delivery log", zap.Error(err))
	}
}

// errSeqMoved aborts a write of the delivery log whose guess of the
// sequence was wrong.
var errSeqMoved = errors.New("delivery log sequence moved")

// seqGuesses is how many guesses of the sequence a write makes before it
// takes its range with Incr.
const seqGuesses = 3

// writeGuessed is write's one-operation path: it returns errSeqMoved when
// every guess was wrong, having written nothing.
func (l *deliveryLog) writeGuessed(ctx context.Context, entries []authenticators.DeliveryResult) error {
	n := int64(len(entries))
	keys := make([]string, 1+len(entries))
	keys[0] = keyLogSeq
	guess := l.seq.Load()
	for range seqGuesses {
		for i := range entries {
			keys[1+i] = l.slotKey(guess + 1 + int64(i))
		}
		var found int64
		err := l.store.UpdateMany(ctx, keys, func(cur []storage.Record, ok []bool) ([]storage.Change, error) {
			seq, err := seqOf(cur[0], ok[0])
			if err != nil {
				return nil, err
			}
			if seq != guess {
				found = seq
				return nil, errSeqMoved
			}
			changes := make([]storage.Change, len(keys))
			// A new sequence never expires; a stored one keeps its expiry,
			// as with Incr.
			changes[0] = storage.Change{Value: binary.BigEndian.AppendUint64(nil, uint64(seq+n)), ExpiresAt: cur[0].ExpiresAt, Op: storage.Write}
			for i, res := range entries {
				if changes[1+i], err = slotChange(seq+1+int64(i), res); err != nil {
					return nil, err
				}
			}
			return changes, nil
		})
		if errors.Is(err, errSeqMoved) {
			guess = found
			continue
		}
		if err == nil {
			l.seq.Store(guess + n)
		}
		return err
	}
	l.seq.Store(guess)
	return errSeqMoved
}

// slotChange writes entry seq into its slot.
func slotChange(seq int64, res authenticators.DeliveryResult) (storage.Change, error) {
	b, err := encodeRecord(logEntry{Seq: seq, DeliveryResult: res})
	return storage.Change{Value: b, ExpiresAt: res.Time.Add(logTTL), Op: storage.Write}, err
}

// putSlots writes entries, numbered from first, into their slots.
func (l *deliveryLog) putSlots(ctx context.Context, first int64, entries []authenticators.DeliveryResult) error {
	keys := make([]string, len(entries))
	changes := make([]storage.Change, len(entries))
	for i, res := range entries {
		var err error
		if changes[i], err = slotChange(first+int64(i), res); err != nil {
			return err
		}
		keys[i] = l.slotKey(first + int64(i))
	}
	if len(entries) == 1 {
		return l.store.Put(ctx, keys[0], changes[0].Value, changes[0].ExpiresAt, false)
	}
	return l.store.UpdateMany(ctx, keys, func([]storage.Record, []bool) ([]storage.Change, error) {
		return changes, nil
	})
}

// flush waits until the entries recorded before it are in the store, or
// ctx ends.
func (l *deliveryLog) flush(ctx context.Context) {
	l.mu.Lock()
	target := l.queued
	l.mu.Unlock()
	for {
		l.mu.Lock()
		if !l.running || l.written >= target {
			l.mu.Unlock()
			return
		}
		moved := l.moved
		l.mu.Unlock()
		signal(l.full)
		select {
		case <-moved:
		case <-ctx.Done():
			return
		}
	}
}

// entries returns the newest entries (at most limit; limit <= 0: all),
// newest first. It walks the ring back from the newest sequence number,
// skipping slots that expired or were overwritten out of order.
func (l *deliveryLog) entries(ctx context.Context, limit int) ([]authenticators.DeliveryResult, error) {
	l.flush(ctx)
	newest, err := l.newestSeq(ctx)
	if err != nil {
		return nil, err
	}
	if limit <= 0 || limit > l.max {
		limit = l.max
	}
	var out []authenticators.DeliveryResult
	for seq := newest; seq > 0 && seq > newest-int64(l.max) && len(out) < limit; seq-- {
		rec, err := l.store.Get(ctx, l.slotKey(seq))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if e, err := decodeRecord[logEntry](rec.Value); err == nil && e.Seq == seq {
			out = append(out, e.DeliveryResult)
		}
	}
	return out, nil
}

// newestSeq is the sequence number of the newest entry, 0 when none was
// ever written. It only reads: the log stays readable when the store
// refuses writes (a full disk), which is when an operator looks at it. A
// counter reads as 8 bytes, big-endian (storage.Store.Incr).
func (l *deliveryLog) newestSeq(ctx context.Context) (int64, error) {
	rec, err := l.store.Get(ctx, keyLogSeq)
	if errors.Is(err, storage.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return seqOf(rec, true)
}

// seqOf reads the stored sequence number rec, 0 when it is not found.
func seqOf(rec storage.Record, found bool) (int64, error) {
	if !found {
		return 0, nil
	}
	if len(rec.Value) != 8 {
		return 0, fmt.Errorf("%w: log sequence of %d bytes", errBadRecord, len(rec.Value))
	}
	return int64(binary.BigEndian.Uint64(rec.Value)), nil
}
