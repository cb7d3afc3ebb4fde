package badger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	badgerdb "github.com/dgraph-io/badger/v4"

	"github.com/caddymfa/caddy-mfa/storage"
)

const (
	// maxAttempts bounds how often a read-modify-write is tried when it
	// conflicts with a concurrent write. Writers in this process serialize
	// per key (see database.lockFor), so conflicts come only from
	// DeletePrefix and are rare.
	maxAttempts = 16

	// deleteBatch is how many keys DeletePrefix removes per write batch.
	deleteBatch = 1000
)

var (
	// errAborted stops a transaction whose UpdateFunc returned an error.
	errAborted = errors.New("update aborted")
	// errOverflow reports a counter that would wrap around.
	errOverflow = errors.New("counter overflow")
)

// usable reports whether the Store can serve a call: it is provisioned,
// not cleaned up, and ctx is live. The caller holds s.mu for reading. A
// Store that Caddy has not started yet (a request came first) opens its
// database now, letting go of s.mu for that moment.
func (s *Store) usable(ctx context.Context) error {
	if s.db == nil {
		if s.path == "" || s.closed {
			return storage.ErrClosed
		}
		s.mu.RUnlock()
		err := s.open()
		s.mu.RLock()
		if err != nil {
			return err
		}
		if s.db == nil { // cleaned up meanwhile
			return storage.ErrClosed
		}
	}
	return ctx.Err()
}

// Get returns the live record at key, or storage.ErrNotFound.
func (s *Store) Get(ctx context.Context, key string) (storage.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return storage.Record{}, fmt.Errorf("getting record: %w", err)
	}
	var (
		rec   storage.Record
		found bool
	)
	err := s.db.db.View(func(txn *badgerdb.Txn) error {
		var err error
		rec, found, err = s.read(txn, key)
		return err
	})
	if err != nil {
		return storage.Record{}, fmt.Errorf("getting record: %w", err)
	}
	if !found {
		return storage.Record{}, storage.ErrNotFound
	}
	return rec, nil
}

// Put stores value at key until expiresAt (zero: no expiry). A durable
// put is synced to disk before Put returns.
func (s *Store) Put(ctx context.Context, key string, value []byte, expiresAt time.Time, durable bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("putting record: %w", err)
	}
	if err := s.checkSpace(); err != nil {
		return fmt.Errorf("putting record: %w", err)
	}
	err := s.update(ctx, key, durable, func(txn *badgerdb.Txn) error {
		return txn.SetEntry(entry(key, value, expiresAt))
	})
	if err != nil {
		return fmt.Errorf("putting record: %w", err)
	}
	if durable {
		if err := s.db.syncer.Sync(); err != nil {
			return fmt.Errorf("syncing record: %w", err)
		}
	}
	return nil
}

// Delete removes key; deleting an absent key is not an error. An absent
// key writes nothing: a blind delete would add a tombstone to the
// memtable and the log for every call, and callers delete keys that are
// usually absent (the cooldowns a success ends when no cooldown is set).
func (s *Store) Delete(ctx context.Context, key string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("deleting record: %w", err)
	}
	err := s.update(ctx, key, false, func(txn *badgerdb.Txn) error {
		k := []byte(key)
		if _, err := txn.Get(k); errors.Is(err, badgerdb.ErrKeyNotFound) {
			return nil
		} else if err != nil {
			return err
		}
		return txn.Delete(k)
	})
	if err != nil {
		return fmt.Errorf("deleting record: %w", err)
	}
	return nil
}

// Update is an atomic read-modify-write of one key in one Badger
// transaction, retried on conflict up to maxAttempts times, then
// storage.ErrConflict. An error from fn is returned unchanged. fn runs
// while the key's write lock is held, so it must not call the Store.
func (s *Store) Update(ctx context.Context, key string, fn storage.UpdateFunc) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("updating record: %w", err)
	}
	if err := s.checkSpace(); err != nil {
		return fmt.Errorf("updating record: %w", err)
	}
	var fnErr error
	durable := false
	err := s.update(ctx, key, true, func(txn *badgerdb.Txn) error {
		cur, found, err := s.read(txn, key)
		if err != nil {
			return err
		}
		value, expiresAt, op, err := fn(cur, found)
		if err != nil {
			fnErr = err
			return errAborted
		}
		durable = op == storage.WriteDurable
		switch op {
		case storage.Keep:
			return nil
		case storage.Write, storage.WriteDurable:
			return txn.SetEntry(entry(key, value, expiresAt))
		case storage.Delete:
			return txn.Delete([]byte(key))
		default:
			return fmt.Errorf("unknown update op %d", op)
		}
	})
	if errors.Is(err, errAborted) {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("updating record: %w", err)
	}
	if durable {
		if err := s.db.syncer.Sync(); err != nil {
			return fmt.Errorf("syncing record: %w", err)
		}
	}
	return nil
}

// UpdateMany is an atomic read-modify-write of several keys in one Badger
// transaction: one write to the log for all of them, retried on conflict
// up to maxAttempts times, then storage.ErrConflict. An error from fn is
// returned unchanged. fn runs while the keys' write locks are held, so it
// must not call the Store.
func (s *Store) UpdateMany(ctx context.Context, keys []string, fn storage.UpdateManyFunc) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("updating records: %w", err)
	}
	if err := storage.CheckKeys(keys); err != nil {
		return err
	}
	if err := s.checkSpace(); err != nil {
		return fmt.Errorf("updating records: %w", err)
	}
	// The keys' locks are held for the transaction only, not for the
	// sync of a durable change, as in update: a writer of any of these
	// keys would otherwise wait for this sync before its own, and the
	// sign-ins behind it for both (each later writer's sync covers this
	// write too, since the log is written in order).
	unlock := s.db.lockAll(keys)
	var fnErr error
	durable := false
	cur := make([]storage.Record, len(keys))
	found := make([]bool, len(keys))
	// In flight once the locks are held: a sync gathering for this write
	// must not wait on a lock that its own writer holds.
	slot := s.db.syncer.begin()
	err := s.retry(ctx, func(txn *badgerdb.Txn) error {
		for i, k := range keys {
			var err error
			if cur[i], found[i], err = s.read(txn, k); err != nil {
				return err
			}
		}
		changes, err := fn(cur, found)
		if err != nil {
			fnErr = err
			return errAborted
		}
		if err := storage.CheckChanges(changes, len(keys)); err != nil {
			return err
		}
		durable = false
		for i, c := range changes {
			switch c.Op {
			case storage.Write, storage.WriteDurable:
				durable = durable || c.Op == storage.WriteDurable
				err = txn.SetEntry(entry(keys[i], c.Value, c.ExpiresAt))
			case storage.Delete:
				if found[i] {
					err = txn.Delete([]byte(keys[i]))
				}
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	s.db.syncer.end(slot)
	unlock()
	if errors.Is(err, errAborted) {
		return fnErr
	}
	if err != nil {
		return fmt.Errorf("updating records: %w", err)
	}
	if durable {
		if err := s.db.syncer.Sync(); err != nil {
			return fmt.Errorf("syncing records: %w", err)
		}
	}
	return nil
}

// Incr atomically adds delta to the counter at key and returns the new
// value. A counter that does not exist or has expired starts at zero and
// takes expiresAt; an existing counter keeps its expiry.
func (s *Store) Incr(ctx context.Context, key string, delta int64, expiresAt time.Time) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return 0, fmt.Errorf("incrementing counter: %w", err)
	}
	if err := s.checkSpace(); err != nil {
		return 0, fmt.Errorf("incrementing counter: %w", err)
	}
	var n int64
	err := s.update(ctx, key, false, func(txn *badgerdb.Txn) error {
		cur, found, err := s.read(txn, key)
		if err != nil {
			return err
		}
		var old int64
		exp := expiresAt
		if found {
			if old, err = decodeCounter(cur.Value); err != nil {
				return err
			}
			exp = cur.ExpiresAt
		}
		if (delta > 0 && old > math.MaxInt64-delta) || (delta < 0 && old < math.MinInt64-delta) {
			return errOverflow
		}
		n = old + delta
		return txn.SetEntry(entry(key, encodeCounter(n), exp))
	})
	if err != nil {
		return 0, fmt.Errorf("incrementing counter: %w", err)
	}
	return n, nil
}

// List returns up to limit live records whose keys start with prefix, in
// key order (reverse: descending). limit <= 0 means no limit.
func (s *Store) List(ctx context.Context, prefix string, limit int, reverse bool) ([]storage.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return nil, fmt.Errorf("listing records: %w", err)
	}
	var recs []storage.Record
	now := s.now()
	err := s.db.db.View(func(txn *badgerdb.Txn) error {
		p := []byte(prefix)
		opts := badgerdb.DefaultIteratorOptions
		opts.Reverse = reverse
		if !reverse {
			// In reverse the iterator starts past the prefix range, so
			// the prefix is checked by hand instead.
			opts.Prefix = p
		}
		if limit > 0 && limit < opts.PrefetchSize {
			opts.PrefetchSize = limit
		}
		it := txn.NewIterator(opts)
		defer it.Close()
		for seekPrefix(it, p, reverse); it.ValidForPrefix(p); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			item := it.Item()
			var (
				value     []byte
				expiresAt time.Time
			)
			err := item.Value(func(v []byte) error {
				var err error
				value, expiresAt, err = decodeValue(v)
				return err
			})
			if err != nil {
				return err
			}
			if expired(expiresAt, now) {
				continue
			}
			recs = append(recs, storage.Record{Key: string(item.Key()), Value: value, ExpiresAt: expiresAt})
			if limit > 0 && len(recs) == limit {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing records: %w", err)
	}
	return recs, nil
}

// DeletePrefix removes every key that starts with prefix, in batches.
// Keys written while it runs may survive.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if err := s.usable(ctx); err != nil {
		return fmt.Errorf("deleting prefix: %w", err)
	}
	p := []byte(prefix)
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("deleting prefix: %w", err)
		}
		var keys [][]byte
		err := s.db.db.View(func(txn *badgerdb.Txn) error {
			opts := badgerdb.DefaultIteratorOptions
			opts.PrefetchValues = false
			opts.Prefix = p
			it := txn.NewIterator(opts)
			defer it.Close()
			for it.Rewind(); it.Valid() && len(keys) < deleteBatch; it.Next() {
				keys = append(keys, it.Item().KeyCopy(nil))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("deleting prefix: %w", err)
		}
		if len(keys) == 0 {
			return nil
		}
		wb := s.db.db.NewWriteBatch()
		for _, k := range keys {
			if err := wb.Delete(k); err != nil {
				wb.Cancel()
				return fmt.Errorf("deleting prefix: %w", err)
			}
		}
		if err := wb.Flush(); err != nil {
			return fmt.Errorf("deleting prefix: %w", err)
		}
		if len(keys) < deleteBatch {
			return nil
		}
	}
}

// update runs fn in a read-write transaction while holding key's
// in-process lock, retrying on conflict up to maxAttempts times. A write
// that may ask for a sync afterwards (maySync) is in flight for the group
// sync meanwhile, so a sync about to start can wait for it.
func (s *Store) update(ctx context.Context, key string, maySync bool, fn func(*badgerdb.Txn) error) error {
	mu := s.db.lockFor(key)
	mu.Lock()
	defer mu.Unlock()
	if !maySync {
		return s.retry(ctx, fn)
	}
	slot := s.db.syncer.begin()
	defer s.db.syncer.end(slot)
	return s.retry(ctx, fn)
}

// retry runs fn in a read-write transaction, again on conflict, up to
// maxAttempts times. The caller holds the keys' in-process locks.
func (s *Store) retry(ctx context.Context, fn func(*badgerdb.Txn) error) error {
	for range maxAttempts {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := s.db.db.Update(fn)
		if !errors.Is(err, badgerdb.ErrConflict) {
			return err
		}
	}
	return storage.ErrConflict
}

// read returns the live record at key as txn sees it; found is false when
// the key is absent or expired by s.now.
func (s *Store) read(txn *badgerdb.Txn, key string) (rec storage.Record, found bool, err error) {
	item, err := txn.Get([]byte(key))
	if errors.Is(err, badgerdb.ErrKeyNotFound) {
		return storage.Record{Key: key}, false, nil
	}
	if err != nil {
		return storage.Record{}, false, err
	}
	var (
		value     []byte
		expiresAt time.Time
	)
	err = item.Value(func(v []byte) error {
		var err error
		value, expiresAt, err = decodeValue(v)
		return err
	})
	if err != nil {
		return storage.Record{}, false, err
	}
	if expired(expiresAt, s.now()) {
		return storage.Record{Key: key}, false, nil
	}
	return storage.Record{Key: key, Value: value, ExpiresAt: expiresAt}, true, nil
}

// entry builds the Badger entry for value at key until expiresAt.
func entry(key string, value []byte, expiresAt time.Time) *badgerdb.Entry {
	return &badgerdb.Entry{
		Key:       []byte(key),
		Value:     encodeValue(value, expiresAt),
		ExpiresAt: badgerExpiry(expiresAt),
	}
}

// seekPrefix positions it on the first key with prefix p in iteration
// order. In reverse, that is the last key below p's successor.
func seekPrefix(it *badgerdb.Iterator, p []byte, reverse bool) {
	if !reverse {
		it.Seek(p)
		return
	}
	end := prefixEnd(p)
	if end == nil {
		// Every key that starts with p sorts last: begin at the end.
		it.Rewind()
		return
	}
	// A reverse seek lands on the last key <= end; end itself is
	// past the range.
	it.Seek(end)
	for it.Valid() && bytes.Compare(it.Item().Key(), end) >= 0 {
		it.Next()
	}
}

// prefixEnd returns the smallest key greater than every key that starts
// with p, or nil if there is none (p empty or all 0xff).
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
