// Package redis is the caddy-mfa store for several Caddy nodes: the Caddy
// module "mfa.storage.redis", which keeps challenges, counters, lockouts,
// sessions and enrollments in Redis, so every node sees one attempt
// budget, one lockout, one replay guard and every session.
//
// The Caddyfile form is
//
//	storage redis [redis://[user[:password]@]host[:port][/db] | rediss://...] {
//	    username      <name>
//	    password      <password>
//	    db            <number>
//	    ca_file       <path>
//	    sentinel      <master> <address...>
//	    key_prefix    <prefix>
//	    timeout       <duration>
//	    pool_size     <n>
//	    wait_replicas <n>
//	}
//
// # The client library
//
// The dependency is github.com/redis/go-redis/v9, Redis' own Go client: it
// speaks ACL users, TLS and Sentinel (a failover client that follows the
// master), pools connections, runs Lua scripts by SHA with a fallback to
// EVAL, and is the client other Caddy plugins for Redis already bring into
// Caddy builds. rueidis was the alternative, for its server-assisted
// client-side caching. Measured on the commands this store sends
// (storage/redis/clientbench, numbers in BENCHMARKS.md), rueidis is 10–20%
// faster per round trip (GET 38–49 µs against 45–63 µs on a loaded
// two-core machine) and allocates less; with client-side caching both
// serve a GET in 0.5–2 µs instead of a round trip, since go-redis has
// such a cache too. That gap is small next to the network, and the hot
// path does not reach the store: the handler keeps sessions in memory per
// node and checks them against the store every few seconds. So the
// choice is the more widely used client, with its simpler API; the store
// turns no client-side cache on, as the handler's own cache decides how
// long a revoked session may live.
//
// # Atomicity across nodes
//
// Every operation is one atomic step on the server:
//
//   - Get is a GET. Put and Delete are Lua scripts: SET (with PXAT) or
//     DEL, and the record's entries in the store's indexes (below).
//   - Incr is a Lua script: read, add with overflow check, write. A new
//     counter takes the given expiry; a live one keeps its own (KEEPTTL).
//   - Update reads the key, runs the caller's function in Go, and writes
//     with a Lua compare-and-set that succeeds only if the key still holds
//     the bytes that were read; otherwise it reads and runs the function
//     again, at most 16 times, then fails with storage.ErrConflict.
//     Updates of one key from one process take turns on an in-process
//     lock first, so only other nodes can make an Update retry.
//
// # Expiry
//
// A record is dead from its ExpiresAt on, to the nanosecond: the exact
// expiry is stored in the value and checked against the node's clock on
// every read, inside the scripts too (the node passes its clock in). The
// key also gets a Redis expiry (PXAT, rounded up to the millisecond), so
// the server drops dead records by itself. Nodes' clocks should be kept in
// sync (NTP), as for any shared expiry.
//
// # List and DeletePrefix
//
// Redis keeps no key order, so the store keeps its own: every write script
// also adds the key to a sorted set under the prefix (the key index, all
// scores 0, so ZRANGE BYLEX ranges are prefix ranges in byte order), and
// keys that expire to a second sorted set scored by expiry. List reads its
// prefix's range of the key index a page at a time and the records with
// MGET; DeletePrefix removes a page of keys and their entries per script
// call. Neither uses KEYS or SCAN, so their cost grows with the records
// listed or deleted, not with the database: listing a user's ten sessions
// takes the same 0.15 ms among 1,000 or 100,000 other keys (BenchmarkList),
// where a SCAN took 59 ms among 100,000. The price is a sorted-set entry
// per key and one more per expiring key (about 100 bytes each, more with
// long keys) and a few sorted-set operations per write. Redis drops an expired record but not
// its entries: each write also sweeps up to four entries whose expiry is
// more than 10 s past, so the indexes shrink as fast as they grow.
//
// # Key prefix
//
// Every key starts with key_prefix (default "mfa/"), and so do the two
// indexes (the prefix, then a NUL byte: keys starting with NUL are
// reserved). Sites or clusters with different prefixes share one Redis
// database without seeing each other's state. A prefix must not start
// with another site's prefix ("mfa/" and "mfa/a/"), or the two sites'
// keys can collide.
//
// # Access control
//
// The store needs these commands and only keys under its prefix, so an
// ACL user can be confined to them (TestLeastPrivilegeACL runs the
// conformance suite as this user):
//
//	user caddy on >password resetkeys ~mfa/* -@all +get +set +del +exists +mget +zadd +zrem +zrange +eval +evalsha +wait +ping +select +hello +auth
//
// Keep the default user on, with a password of its own (requirepass),
// when the server writes an AOF: Redis 7.0 to 7.2, and later versions
// without the fix of redis/redis#14541, replay the AOF's transactions as
// the default user, and this store's scripts reach the AOF as
// transactions, so with that user off or restricted a restart of Redis
// silently drops their writes (examples/redis/redis.conf, whose test
// restarts Redis).
//
// With Sentinel, username and password (and TLS, with ca_file) apply to
// the master and replicas, and TLS to the sentinels too; the sentinels
// themselves are reached without credentials.
//
// # Durable writes
//
// A durable write (an enrollment) is acknowledged once the master has
// applied it. How much a crash can lose is the server's persistence
// setting: a deployment needs "appendonly yes" with "appendfsync
// everysec" (a crash of the master loses at most about a second of writes)
// or "appendfsync always" (none, at a cost on every write). With replicas
// (Sentinel), wait_replicas <n> makes a durable write also wait for n
// replicas to acknowledge it (WAIT), so a failover right after it does not
// lose it; fewer acknowledgements within the timeout fail the write, and
// the handler reports the error.
//
// # Faults
//
// A network failure or timeout is returned as an error that wraps the
// client's, so the handler denies (fails closed). No command is retried
// by the client, so an attempt is never counted twice; pooled connections
// are checked before reuse, so a restarted server serves the next call.
// After Cleanup every method returns storage.ErrClosed. go-redis' own log
// lines go to Caddy's default log at debug level (go-redis has one logger
// per process; the first Store provisioned sets it).
//
// Stores with the same resolved configuration in one process share one
// client and connection pool through a caddy.UsagePool, as a config
// reload provisions the new handler before cleaning up the old one.
//
// The store runs on a standalone Redis (6.2 or later, for SET PXAT and
// KEEPTTL) or one behind Sentinel. Redis Cluster is not supported: a
// write script touches the record and the prefix's indexes, which Cluster
// would place on different nodes.
package redis
