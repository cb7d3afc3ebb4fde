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
// read-modify-write of one key (Update) or of several (UpdateMany) and an
// atomic counter (Incr): enough to make "check the lock, count the
// attempt, compare" a single atomic step, which is what the guessing
// limits depend on, and to write records that must agree (a session and
// the user's index of sessions) in one write.
//
// The package also registers the Caddy app "mfa" (App). Stores, and the
// handlers whose generated secret key lives in a store, register with it
// while Caddy provisions a config (OnStart), and it opens them when Caddy
// starts the config. Provisioning alone, which is all 'caddy validate'
// does, so opens no store and writes nothing; a store used before the app
// started (Caddy starts apps in no set order) opens on first use.
package storage
