package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/caddymfa/caddy-mfa/storage"
)

const (
	// maxAttempts bounds how often Update runs its function when other
	// writers change the key between its read and its write. Writers in
	// this process serialize per key (see keyLocks), so conflicts come
	// from other nodes and are rare.
	maxAttempts = 16

	// mgetBatch is how many keys List reads from the key index and then
	// with one MGET, and DeletePrefix removes per script call.
	mgetBatch = 500

	// sweepMargin is how long after its expiry (by the node's clock) a
	// record is swept from the indexes, so that neither clock skew
	// between nodes nor the server's millisecond rounding can sweep a
	// record that is still live somewhere.
	sweepMargin = 10 * time.Second

	// reservedPrefix starts the store's own keys (its indexes) under the
	// key prefix; no record key may start with it.
	reservedPrefix = "\x00"

	// keyLockSlots is the number of in-process locks that serialize
	// Updates of keys hashing to the same slot.
	keyLockSlots = 64
)

var (
	// errOverflow reports a counter that would wrap around.
	errOverflow = errors.New("counter overflow")
	// errNotCounter reports Incr on a value that is not a counter.
	errNotCounter = errors.New("not a counter")
	// errEmptyKey reports an empty key, which no record has.
	errEmptyKey = errors.New("empty key")
	// errReservedKey reports a key in the store's own namespace.
	errReservedKey = errors.New("keys starting with NUL are reserved")
)

// keyLocks serialize Updates of one key within one client: Stores that
// share a client (a config reload) then never conflict with each other, so
// the bounded retry is spent only on other nodes. A slot is a channel of
// one, so a caller waiting behind an Update on a slow server gives up when
// its context ends.
type keyLocks struct {
	seed  maphash.Seed
	slots [keyLockSlots]chan struct{}
}

func newKeyLocks() *keyLocks {
	l := &keyLocks{seed: maphash.MakeSeed()}
	for i := range l.slots {
		l.slots[i] = make(chan struct{}, 1)
	}
	return l
}

// lock takes the lock of a full Redis key and returns its unlock, or
// ctx's error.
func (l *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	slot := l.slots[maphash.String(l.seed, key)%keyLockSlots]
	select {
	case slot <- struct{}{}:
		return func() { <-slot }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// lockAll takes the locks of several full Redis keys, each slot once and
// in slot order, so two callers of overlapping key sets cannot deadlock,
// and returns the unlock, or ctx's error.
func (l *keyLocks) lockAll(ctx context.Context, keys []string) (unlock func(), err error) {
	var want [keyLockSlots]bool
	for _, k := range keys {
		want[maphash.String(l.seed, k)%keyLockSlots] = true
	}
	var held []chan struct{}
	unlock = func() {
		for _, slot := range held {
			<-slot
		}
	}
	for i, w := range want {
		if !w {
			continue
		}
		select {
		case l.slots[i] <- struct{}{}:
			held = append(held, l.slots[i])
		case <-ctx.Done():
			unlock()
			return nil, ctx.Err()
		}
	}
	return unlock, nil
}

// usable returns the client if the Store can serve a call: provisioned,
// not cleaned up, ctx live, key not empty. The caller holds s.mu for
// reading.
func (s *Store) usable(ctx context.Context, key string, needKey bool) (*goredis.Client, error) {
	if s.client == nil {
		return nil, storage.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if needKey && key == "" {
		return nil, errEmptyKey
	}
	if needKey && strings.HasPrefix(key, reservedPrefix) {
		return nil, errReservedKey
	}
	return s.client.rdb, nil
}

// Get returns the live record at key, or storage.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (storage.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rdb, err := s.usable(ctx, key, true)
	if err != nil {
		return storage.Record{}, fmt.Errorf("getting record: %w", err)
	}
	raw, err := rdb.Get(ctx, s.prefix+key).Bytes()
	if errors.Is(err, goredis.Nil) {
		return storage.Record{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.Record{}, fmt.Errorf("getting record: %w", err)
	}
	rec, found, err := s.decode(key, raw)
	if err != nil {
		return storage.Record{}, fmt.Errorf("getting record: %w", err)
	}
	if !found {
		return storage.Record{}, storage.ErrNotFound
	}
	return rec, nil
}

// Put stores value at key until expiresAt (zero: no expiry). A durable put
// waits for WaitReplicas replicas, if set (see the package doc for what
// durable means on Redis).
func (s *Store) Put(ctx context.Context, key string, value []byte, expiresAt time.Time, durable bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rdb, err := s.usable(ctx, key, true)
	if err != nil {
		return fmt.Errorf("putting record: %w", err)
	}
	keys, args := s.writeArgs(key, encodeValue(value, expiresAt), strconv.FormatInt(pxat(expiresAt), 10))
	if durable && s.WaitReplicas > 0 {
		err = s.durably(ctx, rdb, func(pipe goredis.Pipeliner) { putScript.Eval(ctx, pipe, keys, args...) })
	} else {
		err = putScript.Run(ctx, rdb, keys, args...).Err()
	}
	if err != nil {
		return fmt.Errorf("putting record: %w", err)
	}
	return nil
}

// Delete removes key; deleting an absent key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rdb, err := s.usable(ctx, key, true)
	if err != nil {
		return fmt.Errorf("deleting record: %w", err)
	}
	keys, args := s.writeArgs(key)
	if err := deleteScript.Run(ctx, rdb, keys, args...).Err(); err != nil {
		return fmt.Errorf("deleting record: %w", err)
	}
	return nil
}

// Update is an atomic read-modify-write of one key across every node on
// the server: it reads the key, runs fn, and writes the result with a
// compare-and-set script that fails if any writer changed the key since
// the read; then it reads and runs fn again, up to maxAttempts times, and
// gives up with storage.ErrConflict. An error from fn is returned
// unchanged. fn runs while the key's in-process lock is held, so it must
// not call the Store.
func (s *Store) Update(ctx context.Context, key string, fn storage.UpdateFunc) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rdb, err := s.usable(ctx, key, true)
	if err != nil {
		return fmt.Errorf("updating record: %w", err)
	}
	full := s.prefix + key
	unlock, err := s.client.locks.lock(ctx, full)
	if err != nil {
		return fmt.Errorf("updating record: %w", err)
	}
	defer unlock()
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return fmt.Errorf("updating record: %w", err)
			}
		}
		raw, err := rdb.Get(ctx, full).Bytes()
		seen := err == nil
		if err != nil && !errors.Is(err, goredis.Nil) {
			return fmt.Errorf("updating record: %w", err)
		}
		cur, found := storage.Record{Key: key}, false
		if seen {
			if cur, found, err = s.decode(key, raw); err != nil {
				return fmt.Errorf("updating record: %w", err)
			}
		}
		value, expiresAt, op, err := fn(cur, found)
		if err != nil {
			return err
		}
		keys, args := s.writeArgs(key, "0", "", "set", "", "0")
		if seen {
			args[3], args[4] = "1", raw
		}
		switch op {
		case storage.Keep:
			return nil
		case storage.Write, storage.WriteDurable:
			args[6] = encodeValue(value, expiresAt)
			args[7] = strconv.FormatInt(pxat(expiresAt), 10)
		case storage.Delete:
			if !seen {
				return nil
			}
			args[5] = "del"
		default:
			return fmt.Errorf("updating record: unknown update op %d", op)
		}
		done, err := s.cas(ctx, rdb, casScript, op == storage.WriteDurable, keys, args)
		if err != nil {
			return fmt.Errorf("updating record: %w", err)
		}
		if done == 1 {
			return nil
		}
	}
	return fmt.Errorf("updating record: %w", storage.ErrConflict)
}

// UpdateMany is an atomic read-modify-write of several keys across every
// node on the server: it reads them with one MGET, runs fn, and writes
// the changes with one compare-and-set script that fails if any writer
// changed any of the keys since the read (kept keys included); then it
// reads and runs fn again, up to maxAttempts times, and gives up with
// storage.ErrConflict. An error from fn is returned unchanged. fn runs
// while the keys' in-process locks are held, so it must not call the
// Store.
func (s *Store) UpdateMany(ctx context.Context, keys []string, fn storage.UpdateManyFunc) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := storage.CheckKeys(keys); err != nil {
		return err
	}
	var rdb *goredis.Client
	for _, k := range keys {
		var err error
		if rdb, err = s.usable(ctx, k, true); err != nil {
			return fmt.Errorf("updating records: %w", err)
		}
	}
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = s.prefix + k
	}
	unlock, err := s.client.locks.lockAll(ctx, full)
	if err != nil {
		return fmt.Errorf("updating records: %w", err)
	}
	defer unlock()
	cur := make([]storage.Record, len(keys))
	found := make([]bool, len(keys))
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := backoff(ctx, attempt); err != nil {
				return fmt.Errorf("updating records: %w", err)
			}
		}
		vals, err := rdb.MGet(ctx, full...).Result()
		if err != nil {
			return fmt.Errorf("updating records: %w", err)
		}
		// ARGV: the prefix, the sweep bound, then six per key: its
		// store key, whether it was seen and as what, and the change.
		args := make([]any, 2, 2+6*len(keys))
		args[0], args[1] = s.prefix, strconv.FormatInt(s.now().Add(-sweepMargin).UnixMilli(), 10)
		for i, v := range vals {
			raw, seen := v.(string)
			cur[i], found[i] = storage.Record{Key: keys[i]}, false
			if seen {
				if cur[i], found[i], err = s.decode(keys[i], []byte(raw)); err != nil {
					return fmt.Errorf("updating records: %q: %w", keys[i], err)
				}
			}
			args = append(args, keys[i], strconv.FormatBool(seen), raw, "keep", "", "0")
		}
		changes, err := fn(cur, found)
		if err != nil {
			return err
		}
		if err := storage.CheckChanges(changes, len(keys)); err != nil {
			return fmt.Errorf("updating records: %w", err)
		}
		writes, durable := false, false
		for i, c := range changes {
			a := args[2+6*i:]
			switch c.Op {
			case storage.Write, storage.WriteDurable:
				a[3], a[4], a[5] = "set", encodeValue(c.Value, c.ExpiresAt), strconv.FormatInt(pxat(c.ExpiresAt), 10)
				writes, durable = true, durable || c.Op == storage.WriteDurable
			case storage.Delete:
				if a[1] == "true" {
					a[3], writes = "del", true
				}
			}
		}
		if !writes {
			return nil
		}
		rkeys := append([]string{s.keysIndex(), s.expiryIndex()}, full...)
		done, err := s.cas(ctx, rdb, casManyScript, durable, rkeys, args)
		if err != nil {
			return fmt.Errorf("updating records: %w", err)
		}
		if done == 1 {
			return nil
		}
	}
	return fmt.Errorf("updating records: %w", storage.ErrConflict)
}

// cas runs a compare-and-set script (casScript, casManyScript) and returns
// its answer: 1 written, 0 lost to another writer. A durable write waits
// for WaitReplicas replicas, if set.
func (s *Store) cas(ctx context.Context, rdb *goredis.Client, script *goredis.Script, durable bool, keys []string, args []any) (int64, error) {
	if !durable || s.WaitReplicas == 0 {
		return script.Run(ctx, rdb, keys, args...).Int64()
	}
	var cmd *goredis.Cmd
	err := s.durably(ctx, rdb, func(pipe goredis.Pipeliner) {
		cmd = script.Eval(ctx, pipe, keys, args...)
	})
	if err != nil {
		return 0, err
	}
	return cmd.Int64()
}

// backoff waits a little before the attempt'th try of an Update that lost
// to another node: a few milliseconds, growing, spread by the clock's low
// bits so two nodes that collided do not collide again.
func backoff(ctx context.Context, attempt int) error {
	spread := time.Duration(time.Now().UnixNano()%1000) * time.Microsecond
	d := time.Duration(min(attempt, 8))*time.Millisecond + spread
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Incr atomically adds delta to the counter at key and returns the new
// value, in one Lua script on the server. A counter that does not exist or
// has expired starts at zero and takes expiresAt; an existing counter
// keeps its expiry. Overflow is an error and changes nothing.
func (s *Store) Incr(ctx context.Context, key string, delta int64, expiresAt time.Time) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rdb, err := s.usable(ctx, key, true)
	if err != nil {
		return 0, fmt.Errorf("incrementing counter: %w", err)
	}
	now := s.now()
	keys, args := s.writeArgs(key,
		encodeCounter(delta),
		strconv.FormatInt(now.Unix(), 10),
		strconv.Itoa(now.Nanosecond()),
		header(expiresAt),
		strconv.FormatInt(pxat(expiresAt), 10),
	)
	out, err := incrScript.Run(ctx, rdb, keys, args...).Text()
	if err != nil {
		return 0, fmt.Errorf("incrementing counter: %w", scriptError(err))
	}
	n, err := decodeCounter([]byte(out))
	if err != nil {
		return 0, fmt.Errorf("incrementing counter: %w", err)
	}
	return n, nil
}

// scriptError turns the errors the scripts raise into this package's.
func scriptError(err error) error {
	var rerr goredis.Error
	if !errors.As(err, &rerr) {
		return err
	}
	msg := rerr.Error()
	switch {
	case strings.Contains(msg, "mfa: counter overflow"):
		return errOverflow
	case strings.Contains(msg, "mfa: not a counter"):
		return errNotCounter
	case strings.Contains(msg, "mfa: malformed stored value"):
		return errCorrupt
	}
	return err
}

// List returns up to limit live records whose keys start with prefix, in
// key order (reverse: descending). limit <= 0 means no limit.
//
// Redis keeps no key order, so the store keeps its own: every write adds
// the key to a sorted set (the key index) in the same script. List reads
// the index's range for the prefix (ZRANGE BYLEX), a page at a time, and
// the records with MGET: its cost grows with the records listed, not with
// the database, and it never scans the keyspace.
func (s *Store) List(ctx context.Context, prefix string, limit int, reverse bool) ([]storage.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rdb, err := s.usable(ctx, prefix, false)
	if err != nil {
		return nil, fmt.Errorf("listing records: %w", err)
	}
	lo, hi := lexRange(prefix)
	var recs []storage.Record
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("listing records: %w", err)
		}
		page := goredis.ZRangeArgs{Key: s.keysIndex(), Start: lo, Stop: hi, ByLex: true, Count: mgetBatch}
		if reverse {
			page.Start, page.Stop, page.Rev = hi, lo, true
		}
		members, err := rdb.ZRangeArgs(ctx, page).Result()
		if err != nil {
			return nil, fmt.Errorf("listing records: %w", err)
		}
		if len(members) == 0 {
			return recs, nil
		}
		full := make([]string, len(members))
		for i, m := range members {
			full[i] = s.prefix + m
		}
		vals, err := rdb.MGet(ctx, full...).Result()
		if err != nil {
			return nil, fmt.Errorf("listing records: %w", err)
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue // expired: the server dropped it, a sweep will unindex it
			}
			rec, found, err := s.decode(members[i], []byte(str))
			if err != nil {
				return nil, fmt.Errorf("listing records: %q: %w", members[i], err)
			}
			if !found {
				continue
			}
			recs = append(recs, rec)
			if limit > 0 && len(recs) == limit {
				return recs, nil
			}
		}
		if len(members) < mgetBatch {
			return recs, nil
		}
		// The next page starts after the last key of this one.
		last := "(" + members[len(members)-1]
		if reverse {
			hi = last
		} else {
			lo = last
		}
	}
}

// DeletePrefix removes every key that starts with prefix, with its index
// entries, up to mgetBatch keys per script call. Keys written while it
// runs may survive.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rdb, err := s.usable(ctx, prefix, false)
	if err != nil {
		return fmt.Errorf("deleting prefix: %w", err)
	}
	lo, hi := lexRange(prefix)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("deleting prefix: %w", err)
		}
		n, err := deletePrefixScript.Run(ctx, rdb, []string{s.keysIndex(), s.expiryIndex()},
			lo, hi, s.prefix, mgetBatch).Int()
		if err != nil {
			return fmt.Errorf("deleting prefix: %w", err)
		}
		if n < mgetBatch {
			return nil
		}
	}
}

// keysIndex is the Redis key of the sorted set of the store's keys.
func (s *Store) keysIndex() string { return s.prefix + reservedPrefix + "keys" }

// expiryIndex is the Redis key of the sorted set of the store's keys
// scored by their expiry.
func (s *Store) expiryIndex() string { return s.prefix + reservedPrefix + "expiry" }

// writeArgs returns the KEYS and ARGV of a write script on key (see
// luaIndex), with args after the common arguments.
func (s *Store) writeArgs(key string, args ...any) ([]string, []any) {
	sweepBefore := s.now().Add(-sweepMargin).UnixMilli()
	return []string{s.prefix + key, s.keysIndex(), s.expiryIndex()},
		append([]any{key, s.prefix, strconv.FormatInt(sweepBefore, 10)}, args...)
}

// lexRange returns the ZRANGE BYLEX bounds of the keys that start with
// prefix.
func lexRange(prefix string) (lo, hi string) {
	lo, hi = "["+prefix, "+"
	if prefix == "" {
		lo = "-"
	}
	if end, ok := prefixEnd(prefix); ok {
		hi = "(" + end
	}
	return lo, hi
}

// prefixEnd returns the smallest string greater than every string that
// starts with p, or false if there is none (p empty or all 0xff).
func prefixEnd(p string) (string, bool) {
	end := []byte(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return string(end[:i+1]), true
		}
	}
	return "", false
}

// durably runs the writes queued by queue and a WAIT in one pipeline, on
// one connection (WAIT counts the replicas that have the connection's
// writes), and fails unless WaitReplicas replicas acknowledged them within
// the timeout.
func (s *Store) durably(ctx context.Context, rdb *goredis.Client, queue func(goredis.Pipeliner)) error {
	var wait *goredis.Cmd
	_, err := rdb.Pipelined(ctx, func(pipe goredis.Pipeliner) error {
		queue(pipe)
		// WAIT gets half the timeout, so the reply beats the read deadline.
		wait = pipe.Do(ctx, "WAIT", s.WaitReplicas, max(s.timeout/2, time.Millisecond).Milliseconds())
		return nil
	})
	if err != nil {
		return err
	}
	n, err := wait.Int64()
	if err != nil {
		return err
	}
	if n < int64(s.WaitReplicas) {
		return fmt.Errorf("durable write acknowledged by %d of %d replicas", n, s.WaitReplicas)
	}
	return nil
}

// decode parses a stored value read at key; found is false when the
// record has expired by s.now.
func (s *Store) decode(key string, raw []byte) (storage.Record, bool, error) {
	value, expiresAt, err := decodeValue(raw)
	if err != nil {
		return storage.Record{}, false, err
	}
	if expired(expiresAt, s.now()) {
		return storage.Record{Key: key}, false, nil
	}
	return storage.Record{Key: key, Value: value, ExpiresAt: expiresAt}, true, nil
}
