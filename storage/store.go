package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Namespace is the Caddy module namespace of store backends. A backend is a
// Caddy module in this namespace that implements Store.
const Namespace = "mfa.storage"

// Sentinel errors a Store returns, so callers can tell the cases apart.
var (
	// ErrNotFound means the key does not exist or has expired.
	ErrNotFound = errors.New("storage: not found")
	// ErrClosed means the store has been closed.
	ErrClosed = errors.New("storage: closed")
	// ErrConflict means a read-modify-write lost against concurrent writers
	// more times than the store retries.
	ErrConflict = errors.New("storage: too many conflicting writes")
	// ErrNoSpace means the store refused a write because the space it
	// writes to is (nearly) full. Reads go on; writes resume by themselves
	// once space is freed.
	ErrNoSpace = errors.New("storage: no space for writes")
)

// Record is a stored value with its absolute expiry (zero: never expires).
type Record struct {
	Key       string
	Value     []byte
	ExpiresAt time.Time
}

// Op tells Update what to do with the value its function returns.
type Op int

const (
	// Keep leaves the stored value untouched.
	Keep Op = iota
	// Write stores the returned value and expiry.
	Write
	// Delete removes the key.
	Delete
	// WriteDurable is Write, synced to disk before Update returns: for
	// records a crash must not lose, such as a user's enrolled factors.
	WriteDurable
)

// UpdateFunc receives the current record (Value nil and found false when the
// key is absent or expired) and returns the new value, its expiry and what to
// do. It may be called more than once when writers conflict, so it must not
// have side effects beyond its return values. An error aborts the update and
// is returned unchanged by Update.
type UpdateFunc func(cur Record, found bool) (value []byte, expiresAt time.Time, op Op, err error)

// MaxUpdateKeys bounds how many keys one UpdateMany may change.
const MaxUpdateKeys = 64

// Change is what UpdateMany does with one of its keys: the results of an
// UpdateFunc. The zero Change keeps the key as it is.
type Change struct {
	Value     []byte
	ExpiresAt time.Time
	Op        Op
}

// UpdateManyFunc receives the current records of UpdateMany's keys, in
// their order (found[i] false when keys[i] is absent or expired), and
// returns one Change per key, or nil to keep them all. Like an
// UpdateFunc it may be called more than once when writers conflict, so
// it must not have side effects beyond its return values; an error
// aborts the update and is returned unchanged by UpdateMany.
type UpdateManyFunc func(cur []Record, found []bool) ([]Change, error)

// Store is the state the handler keeps: challenges, counters, sessions,
// enrollments and the delivery log. Keys are slash-separated strings such as
// "chal/<id>". Every method is safe for concurrent use. Any error other than
// ErrNotFound must make the caller deny (fail closed).
type Store interface {
	// Get returns the record at key, or ErrNotFound.
	Get(ctx context.Context, key string) (Record, error)

	// Put stores value at key until expiresAt (zero: no expiry). Durable puts
	// are synced to disk before Put returns.
	Put(ctx context.Context, key string, value []byte, expiresAt time.Time, durable bool) error

	// Delete removes key; deleting an absent key is not an error.
	Delete(ctx context.Context, key string) error

	// Update is an atomic read-modify-write of one key, retried a bounded
	// number of times on conflict (then ErrConflict).
	Update(ctx context.Context, key string, fn UpdateFunc) error

	// UpdateMany is Update over several distinct keys (at most
	// MaxUpdateKeys) in one atomic step: fn sees every key as it is, and
	// its changes are all written, or none, only if no other writer
	// changed any of the keys in between (a key fn keeps included);
	// retried a bounded number of times on conflict (then ErrConflict).
	// One WriteDurable change makes the whole write durable. It is how
	// records that must agree change together (a lockout and the
	// challenge it guards, a session and the user's index of sessions),
	// and it costs one write, not one per key.
	UpdateMany(ctx context.Context, keys []string, fn UpdateManyFunc) error

	// Incr atomically adds delta to the int64 counter at key and returns the
	// new value. A counter that does not exist (or expired) starts at zero
	// and takes expiresAt; an existing counter keeps its expiry.
	// Get and List return a counter's value as 8 bytes, big-endian two's
	// complement, in every backend, so a copy of the bytes (Copy) counts
	// on in another store.
	Incr(ctx context.Context, key string, delta int64, expiresAt time.Time) (int64, error)

	// List returns up to limit live records whose keys start with prefix, in
	// key order (reverse: descending). limit <= 0 means no limit.
	List(ctx context.Context, prefix string, limit int, reverse bool) ([]Record, error)

	// DeletePrefix removes every key that starts with prefix.
	DeletePrefix(ctx context.Context, prefix string) error
}

// ErrBadKeys reports keys that UpdateMany cannot take: none, more than
// MaxUpdateKeys, an empty key or a key given twice.
var ErrBadKeys = errors.New("storage: UpdateMany needs 1 to MaxUpdateKeys distinct, non-empty keys")

// CheckKeys returns ErrBadKeys unless keys are fit for UpdateMany.
func CheckKeys(keys []string) error {
	if len(keys) == 0 || len(keys) > MaxUpdateKeys {
		return ErrBadKeys
	}
	for i, k := range keys {
		if k == "" {
			return ErrBadKeys
		}
		for _, o := range keys[:i] {
			if o == k {
				return ErrBadKeys
			}
		}
	}
	return nil
}

// CheckChanges reports an UpdateManyFunc's result that does not have
// one change per key (nil, keeping every key, is fine) or names an
// unknown Op.
func CheckChanges(changes []Change, keys int) error {
	if changes == nil {
		return nil
	}
	if len(changes) != keys {
		return fmt.Errorf("storage: %d changes for %d keys", len(changes), keys)
	}
	for _, c := range changes {
		if c.Op < Keep || c.Op > WriteDurable {
			return fmt.Errorf("storage: unknown update op %d", c.Op)
		}
	}
	return nil
}

// Locator is implemented by stores that can name where their data lives,
// e.g. a directory. The admin API uses it to tell sites apart and to
// treat handlers that share a store as one.
type Locator interface {
	Location() string
}
