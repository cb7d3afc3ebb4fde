// Package badger is the default caddy-mfa store: the Caddy module
// "mfa.storage.badger", which keeps challenges, counters, sessions and
// enrollments in an embedded Badger v4 database in a local directory
// (by default the "mfa" folder of Caddy's data directory).
//
// Badger is the dependency because the store needs what it gives in pure
// Go with no server to run: transactions with conflict detection, so
// "check the lock, count the attempt" is one atomic step; entry TTLs, so
// challenges and throttle windows expire without a sweeper; crash-safe
// persistence, so counters and lockouts survive restarts; and an
// exclusive directory lock, so two Caddy processes cannot share (and
// corrupt) one store. It is a well-kept library used by Dgraph and others,
// where a hand-written file format would have to earn the same trust.
//
// The database opens when Caddy starts the config (storage.App), not at
// provision: 'caddy validate' creates no directory. A directory that cannot
// be created or opened stops the start with an error naming it.
//
// Every Store on one directory in the process shares one open database
// through a caddy.UsagePool: a config reload provisions the new handler
// before cleaning up the old one, and the last Cleanup closes the
// database. A second process on the same directory gets an error that
// names the directory and points to 'caddy reload'.
//
// Durable writes (enrollments) are synced before they return; concurrent
// ones share one fsync (group commit).
//
// A full disk must not take Caddy down: Badger fills memory-mapped sparse
// files, and a page the kernel cannot back ends the process with SIGBUS.
// So the store reads the free space under its directory (at most once a
// second) and refuses the writes that grow it (Put, Update, Incr) with
// storage.ErrNoSpace while less than MinFree (64 MiB) is left; reads and
// deletes go on, and writes resume once space returns. go-humanize parses
// the size in the Caddyfile (Caddy itself depends on it) and x/sys reads
// the free space.
//
// The Caddyfile form is
//
//	storage badger [<dir>] {
//		min_free <size>|off
//		memtable_size <size>
//		block_cache_size <size>|off
//		index_cache_size <size>
//		value_log_file_size <size>
//		value_threshold <size>
//		compactors <n>
//		level_zero_tables <n>
//		compression none|snappy|zstd
//	}
//
// The memory settings size Badger for a plugin inside Caddy rather than
// for a database server (see options); their defaults keep Caddy's memory
// under a sign-in storm within tens of MiB of an idle Caddy.
package badger
