package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// ErrNotEmpty is returned by Copy when the destination already holds
// records: a copy moves a whole state and never merges two.
var ErrNotEmpty = errors.New("storage: the destination store is not empty")

// Copy copies every live record of src into dst with its expiry, and
// returns how many it copied. Values are copied byte for byte: every
// backend keeps records, and counters as 8-byte big-endian integers, in
// the same form (see Store.Incr), so sessions, enrollments, counters and
// lockouts mean the same in dst. The last record is written durably,
// which syncs the ones before it. Copy refuses a dst that holds any record
// (ErrNotEmpty). The source should not change while it runs: copy with
// Caddy stopped.
func Copy(ctx context.Context, dst, src Store) (int, error) {
	existing, err := dst.List(ctx, "", 1, false)
	if err != nil {
		return 0, fmt.Errorf("reading the destination: %w", err)
	}
	if len(existing) > 0 {
		return 0, fmt.Errorf("%w (it has %q)", ErrNotEmpty, existing[0].Key)
	}
	recs, err := src.List(ctx, "", 0, false)
	if err != nil {
		return 0, fmt.Errorf("reading the source: %w", err)
	}
	for i, rec := range recs {
		durable := i == len(recs)-1
		if err := dst.Put(ctx, rec.Key, rec.Value, rec.ExpiresAt, durable); err != nil {
			return i, fmt.Errorf("writing %q: %w", rec.Key, err)
		}
	}
	return len(recs), nil
}

// Open loads and provisions the store that spec describes, in ctx. spec is
// either the Caddyfile form of the mfa directive's storage line without
// the word "storage" ("badger /var/lib/caddy/mfa", "redis
// redis://127.0.0.1:6379 { key_prefix site1 }") or its JSON form
// ({"backend": "badger", "dir": "..."}). The caller cancels ctx to clean
// the store up.
func Open(ctx caddy.Context, spec string) (Store, error) {
	name, raw, err := parseSpec(spec)
	if err != nil {
		return nil, err
	}
	mod, err := ctx.LoadModuleByID(Namespace+"."+name, raw)
	if err != nil {
		return nil, fmt.Errorf("loading store %s: %w", name, err)
	}
	st, ok := mod.(Store)
	if !ok {
		return nil, fmt.Errorf("module %s.%s is not an mfa store", Namespace, name)
	}
	return st, nil
}

// parseSpec returns the backend name and module JSON of a store spec.
func parseSpec(spec string) (string, json.RawMessage, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return "", nil, errors.New("empty store: give e.g. 'badger /var/lib/caddy/mfa'")
	}
	if strings.HasPrefix(spec, "{") && json.Valid([]byte(spec)) {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(spec), &fields); err != nil {
			return "", nil, fmt.Errorf("store %s: %w", spec, err)
		}
		var name string
		if err := json.Unmarshal(fields["backend"], &name); err != nil || name == "" {
			return "", nil, fmt.Errorf(`store %s: needs "backend", e.g. {"backend": "badger", "dir": "/var/lib/caddy/mfa"}`, spec)
		}
		delete(fields, "backend")
		raw, err := json.Marshal(fields)
		return name, raw, err
	}
	tokens, err := caddyfile.Tokenize([]byte(spec), "store")
	if err != nil {
		return "", nil, fmt.Errorf("store %q: %w", spec, err)
	}
	d := caddyfile.NewDispenser(tokens)
	d.Next()
	name := d.Val()
	unm, err := caddyfile.UnmarshalModule(d, Namespace+"."+name)
	if err != nil {
		return "", nil, fmt.Errorf("store %q: %w", spec, err)
	}
	raw, err := json.Marshal(unm)
	if err != nil {
		return "", nil, fmt.Errorf("store %q: %w", spec, err)
	}
	return name, raw, nil
}
