// Package storage defines the Store interface through which caddy-mfa keeps
// its state: one-time challenges, throttle counters, lockouts, sessions,
// enrollments and the delivery log.
//
// The rest of the plugin sees only this interface, never the database behind
// it, so a backend can be swapped by a Caddy guest module in the
// "mfa.storage" namespace. The default backend is storage/badger, an
// embedded Badger v4 database.
//
// The interface is a small key-value store with expiry, an atomic
// read-modify-write (Update) and an atomic counter (Incr): enough to make
// "check the lock, count the attempt" a single atomic step, which is what
// the guessing limits depend on.
package storage
