package caddymfa

import (
	"context"
	"encoding/binary"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddymfa/caddy-mfa/storage"
)

// memStore is a storage.Store in memory for the unit tests of the state
// services; records expire by now, the services' clock. gets counts
// reads, so a test can tell how often a record was loaded.
type memStore struct {
	mu      sync.Mutex
	m       map[string]storage.Record
	now     func() time.Time
	gets    atomic.Int64
	updates atomic.Int64
}

func newMemStore(now func() time.Time) *memStore {
	return &memStore{m: map[string]storage.Record{}, now: now}
}

func (s *memStore) live(k string) (storage.Record, bool) {
	rec, ok := s.m[k]
	if ok && !rec.ExpiresAt.IsZero() && !s.now().Before(rec.ExpiresAt) {
		delete(s.m, k)
		return storage.Record{}, false
	}
	return rec, ok
}

func (s *memStore) Get(_ context.Context, k string) (storage.Record, error) {
	s.gets.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, ok := s.live(k)
	if !ok {
		return storage.Record{}, storage.ErrNotFound
	}
	return rec, nil
}

func (s *memStore) Put(_ context.Context, k string, v []byte, exp time.Time, _ bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[k] = storage.Record{Key: k, Value: append([]byte(nil), v...), ExpiresAt: exp}
	return nil
}

func (s *memStore) Delete(_ context.Context, k string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, k)
	return nil
}

func (s *memStore) Update(_ context.Context, k string, fn storage.UpdateFunc) error {
	s.updates.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, found := s.live(k)
	v, exp, op, err := fn(cur, found)
	if err != nil {
		return err
	}
	switch op {
	case storage.Write, storage.WriteDurable:
		s.m[k] = storage.Record{Key: k, Value: v, ExpiresAt: exp}
	case storage.Delete:
		delete(s.m, k)
	}
	return nil
}

func (s *memStore) UpdateMany(_ context.Context, keys []string, fn storage.UpdateManyFunc) error {
	if err := storage.CheckKeys(keys); err != nil {
		return err
	}
	s.updates.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := make([]storage.Record, len(keys))
	found := make([]bool, len(keys))
	for i, k := range keys {
		cur[i], found[i] = s.live(k)
		cur[i].Key = k
	}
	changes, err := fn(cur, found)
	if err != nil {
		return err
	}
	if err := storage.CheckChanges(changes, len(keys)); err != nil {
		return err
	}
	for i, c := range changes {
		switch c.Op {
		case storage.Write, storage.WriteDurable:
			s.m[keys[i]] = storage.Record{Key: keys[i], Value: c.Value, ExpiresAt: c.ExpiresAt}
		case storage.Delete:
			delete(s.m, keys[i])
		}
	}
	return nil
}

func (s *memStore) Incr(_ context.Context, k string, delta int64, exp time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur, found := s.live(k)
	var n int64
	if found {
		n = int64(binary.BigEndian.Uint64(cur.Value))
		exp = cur.ExpiresAt
	}
	n += delta
	s.m[k] = storage.Record{Key: k, Value: binary.BigEndian.AppendUint64(nil, uint64(n)), ExpiresAt: exp}
	return n, nil
}

func (s *memStore) List(_ context.Context, prefix string, limit int, reverse bool) ([]storage.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	for k := range s.m {
		if _, ok := s.live(k); ok && strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if reverse {
		sort.Sort(sort.Reverse(sort.StringSlice(keys)))
	}
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	out := make([]storage.Record, len(keys))
	for i, k := range keys {
		out[i] = s.m[k]
	}
	return out, nil
}

func (s *memStore) DeletePrefix(_ context.Context, prefix string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.m {
		if strings.HasPrefix(k, prefix) {
			delete(s.m, k)
		}
	}
	return nil
}

var _ storage.Store = (*memStore)(nil)
