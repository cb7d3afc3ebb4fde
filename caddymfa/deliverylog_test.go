package caddymfa

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/storage"
)

// countingStore counts the calls a caller makes, by operation, and the
// records that List and DeletePrefix walk: the operations whose cost grows
// with the size of the store.
type countingStore struct {
	storage.Store
	mu     sync.Mutex
	ops    map[string]int
	listed int
	keys   []string // "op key" of every call since takeKeys
}

func newCountingStore(s storage.Store) *countingStore {
	return &countingStore{Store: s, ops: map[string]int{}}
}

func (c *countingStore) count(op, key string) {
	c.mu.Lock()
	c.ops[op]++
	c.keys = append(c.keys, op+" "+key)
	c.mu.Unlock()
}

// takeKeys returns the calls so far, as "op key", and starts again.
func (c *countingStore) takeKeys() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := c.keys
	c.keys = nil
	return keys
}

// take returns the counts so far and starts again from zero.
func (c *countingStore) take() (ops map[string]int, listed int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ops, listed = c.ops, c.listed
	c.ops, c.listed = map[string]int{}, 0
	return ops, listed
}

func (c *countingStore) Get(ctx context.Context, k string) (storage.Record, error) {
	c.count("get", k)
	return c.Store.Get(ctx, k)
}
func (c *countingStore) Put(ctx context.Context, k string, v []byte, exp time.Time, d bool) error {
	c.count("put", k)
	return c.Store.Put(ctx, k, v, exp, d)
}
func (c *countingStore) Delete(ctx context.Context, k string) error {
	c.count("delete", k)
	return c.Store.Delete(ctx, k)
}
func (c *countingStore) Update(ctx context.Context, k string, fn storage.UpdateFunc) error {
	c.count("update", k)
	return c.Store.Update(ctx, k, fn)
}
func (c *countingStore) UpdateMany(ctx context.Context, keys []string, fn storage.UpdateManyFunc) error {
	c.count("update_many", strings.Join(keys, " "))
	return c.Store.UpdateMany(ctx, keys, fn)
}
func (c *countingStore) Incr(ctx context.Context, k string, d int64, exp time.Time) (int64, error) {
	c.count("incr", k)
	return c.Store.Incr(ctx, k, d, exp)
}
func (c *countingStore) List(ctx context.Context, prefix string, limit int, reverse bool) ([]storage.Record, error) {
	c.count("list", prefix)
	recs, err := c.Store.List(ctx, prefix, limit, reverse)
	c.mu.Lock()
	c.listed += len(recs)
	c.mu.Unlock()
	return recs, err
}
func (c *countingStore) DeletePrefix(ctx context.Context, prefix string) error {
	c.count("delete_prefix", prefix)
	return c.Store.DeletePrefix(ctx, prefix)
}

// A delivery costs the same whatever the log holds: one store operation
// (the sequence number and the slot), never a listing of the log.
func TestDeliveryLogWriteCostIsConstant(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	cs := newCountingStore(e.h.store)
	l := &deliveryLog{store: cs, logger: e.h.logger, max: 10}
	for i := range 5 * l.max {
		l.record(authenticators.DeliveryResult{Method: "email", To: "a***@e***.com", Attempt: 1, OK: true, Error: fmt.Sprint(i)})
		ops, listed := cs.take()
		if len(ops) != 1 || ops["update_many"] != 1 || listed != 0 {
			t.Fatalf("delivery %d: store calls %v, %d records listed; want one update_many", i, ops, listed)
		}
	}
	// The ring holds exactly its bound in keys.
	recs, err := e.h.store.List(t.Context(), keyLog, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != l.max {
		t.Fatalf("log keys: %d, want %d", len(recs), l.max)
	}
}

// Two handlers on one store share one log: entries from both, none lost
// to the other's writes.
func TestDeliveryLogSharedByHandlersOnOneStore(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	a := &deliveryLog{store: e.h.store, logger: e.h.logger, max: 100}
	b := &deliveryLog{store: e.h.store, logger: e.h.logger, max: 100}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			l := a
			if i%2 == 1 {
				l = b
			}
			l.record(authenticators.DeliveryResult{Method: "email", OK: true, Error: fmt.Sprint(i)})
		})
	}
	wg.Wait()
	got, err := a.entries(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.Error] = true
	}
	if len(got) != 40 || len(seen) != 40 {
		t.Fatalf("shared log: %d entries, %d distinct", len(got), len(seen))
	}
	// Reading the log writes nothing, so it stays readable on a full disk.
	cs := newCountingStore(e.h.store)
	reader := &deliveryLog{store: cs, logger: e.h.logger, max: 100}
	if _, err := reader.entries(t.Context(), 0); err != nil {
		t.Fatal(err)
	}
	if ops, _ := cs.take(); ops["incr"]+ops["put"]+ops["update"]+ops["delete"] != 0 {
		t.Fatalf("reading the log wrote to the store: %v", ops)
	}
	if few, _ := b.entries(t.Context(), 5); len(few) != 5 || few[0] != got[0] {
		t.Fatalf("limit 5: %d entries", len(few))
	}
}

// A sign-in's store calls do not depend on how many sign-ins came before
// it: the 300th makes the same calls as the 3rd, and none of them lists or
// walks a prefix of the store (the delivery log used to be listed every 64
// deliveries, so a sign-in's cost grew with the log).
func TestSignInStoreCallsDoNotGrow(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	cs := newCountingStore(e.h.store)
	e.h.store = cs
	e.h.dlog.store = cs
	sent := 0
	signIn := func() map[string]int {
		b := e.browser("alice")
		cs.take()
		if resp := b.postJSON("/send", nil); resp.StatusCode != 200 {
			t.Fatalf("send: %d", resp.StatusCode)
		}
		sent++
		code := e.lastCode()
		if resp := b.postJSON("/verify", map[string]string{"code": code}); resp.StatusCode != 200 {
			t.Fatalf("verify: %d", resp.StatusCode)
		}
		e.waitLogged(sent) // the delivery's log entry is part of the sign-in
		ops, listed := cs.take()
		if ops["list"]+ops["delete_prefix"] != 0 || listed != 0 {
			t.Fatalf("a sign-in listed the store: %v, %d records", ops, listed)
		}
		e.clock.add(time.Minute)
		return ops
	}
	for range 3 {
		signIn()
	}
	first := signIn()
	var last map[string]int
	for range 300 {
		last = signIn()
	}
	if fmt.Sprint(first) != fmt.Sprint(last) {
		t.Fatalf("store calls per sign-in grew: first %v, after 300 sign-ins %v", first, last)
	}
	e.h.dlog.flush(t.Context())
	if recs, _ := e.h.store.List(t.Context(), keyLog, 0, false); len(recs) < 300 {
		t.Fatalf("log holds %d entries, want one per sign-in", len(recs))
	}
}

// Entries recorded within logFlushDelay of each other share one store
// write: 40 deliveries cost one store operation over the sequence and
// their slots (not 80 writes), /mfa/log shows all of them, and closing the
// log stops its writer.
func TestDeliveryLogGroupsWrites(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		clock := &testClock{t: time.Now()}
		cs := newCountingStore(newMemStore(clock.now))
		l := &deliveryLog{store: cs, logger: zap.NewNop(), max: 100}
		l.start()
		defer l.close()
		for i := range 40 {
			l.record(authenticators.DeliveryResult{Method: "email", OK: true, Error: fmt.Sprint(i)})
		}
		synctest.Wait()
		if ops, _ := cs.take(); len(ops) != 0 {
			t.Fatalf("written before the flush delay: %v", ops)
		}
		time.Sleep(logFlushDelay)
		synctest.Wait()
		if ops, _ := cs.take(); len(ops) != 1 || ops["update_many"] != 1 {
			t.Fatalf("40 entries: store calls %v, want one update_many", ops)
		}
		got, err := l.entries(t.Context(), 0)
		if err != nil || len(got) != 40 || got[0].Error != "39" || got[39].Error != "0" {
			t.Fatalf("entries: %d, %v", len(got), err)
		}
		// A full batch goes out without waiting; reading the log waits
		// for what was recorded before the read.
		for i := range storage.MaxUpdateKeys + 3 {
			l.record(authenticators.DeliveryResult{Method: "email", OK: true, Error: fmt.Sprint("b", i)})
		}
		got, err = l.entries(t.Context(), 1)
		if err != nil || len(got) != 1 || got[0].Error != fmt.Sprint("b", storage.MaxUpdateKeys+2) {
			t.Fatalf("newest entry after a read: %v, %v", got, err)
		}
	})
}

// Two handlers on one store, each with its writer, under concurrent
// deliveries: every entry is kept once, in its own slot (the sequence
// ranges of their batches never overlap).
func TestDeliveryLogBatchesSharedByHandlers(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	a := &deliveryLog{store: e.h.store, logger: e.h.logger, max: 500}
	b := &deliveryLog{store: e.h.store, logger: e.h.logger, max: 500}
	a.start()
	b.start()
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Go(func() {
			l := a
			if i%2 == 1 {
				l = b
			}
			l.record(authenticators.DeliveryResult{Method: "email", OK: true, Error: fmt.Sprint(i)})
		})
	}
	wg.Wait()
	a.close()
	b.close()
	got, err := a.entries(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.Error] = true
	}
	if len(got) != 300 || len(seen) != 300 {
		t.Fatalf("shared log: %d entries, %d distinct", len(got), len(seen))
	}
}

// racingStore is a store on which another handler writes a delivery log
// entry just before each UpdateMany of the log's slots: the sequence the
// log guessed has always moved.
type racingStore struct {
	storage.Store
	other *deliveryLog
}

func (r *racingStore) UpdateMany(ctx context.Context, keys []string, fn storage.UpdateManyFunc) error {
	if keys[0] == keyLogSeq {
		r.other.record(authenticators.DeliveryResult{Method: "email", OK: true, Error: "other"})
	}
	return r.Store.UpdateMany(ctx, keys, fn)
}

// The one-operation write names its slots from a guess of the sequence:
// a log whose guess is stale, because another handler on the store wrote
// meanwhile, tries again with the sequence it found, and one whose every
// guess loses to another handler takes its range with Incr. Either way
// every entry of both handlers is kept once, in its own slot.
func TestDeliveryLogGuessesOfTheSequence(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	cs := newCountingStore(e.h.store)
	a := &deliveryLog{store: cs, logger: e.h.logger, max: 100}
	b := &deliveryLog{store: e.h.store, logger: e.h.logger, max: 100}
	for i := range 10 {
		a.record(authenticators.DeliveryResult{Method: "email", OK: true, Error: fmt.Sprint("a", i)})
		b.record(authenticators.DeliveryResult{Method: "email", OK: true, Error: fmt.Sprint("b", i)})
	}
	// The first guess (an empty log) is right; each later one is one
	// entry behind.
	if ops, _ := cs.take(); ops["update_many"] != 1+2*9 || len(ops) != 1 {
		t.Fatalf("10 entries, each after another handler's: store calls %v, want two update_many each after the first", ops)
	}

	racer := &deliveryLog{store: &racingStore{Store: e.h.store, other: b}, logger: e.h.logger, max: 100}
	racer.record(authenticators.DeliveryResult{Method: "email", OK: true, Error: "racer"})

	got, err := b.entries(t.Context(), 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, r := range got {
		seen[r.Error]++
	}
	if len(got) != 20+seqGuesses+1 || seen["other"] != seqGuesses || seen["racer"] != 1 || seen["a9"] != 1 || seen["b9"] != 1 {
		t.Fatalf("shared log: %d entries: %v", len(got), seen)
	}
}
