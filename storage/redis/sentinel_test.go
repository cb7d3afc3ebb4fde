package redis

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/storage"
)

// eventually retries fn every 50ms until it returns nil or d has passed,
// and returns its last error.
func eventually(d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSentinelFailoverKeepsDurableWrites(t *testing.T) {
	ctx := context.Background()
	master := redistest.Start(t, "appendonly yes")
	replica := redistest.Start(t, "appendonly yes", "replicaof 127.0.0.1 "+strconv.Itoa(master.Port))
	sentinel := redistest.StartSentinel(t,
		"sentinel monitor mymaster 127.0.0.1 "+strconv.Itoa(master.Port)+" 1",
		"sentinel down-after-milliseconds mymaster 1000",
		"sentinel failover-timeout mymaster 10000",
	)
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: sentinel.Addr, DisableIdentity: true})
	t.Cleanup(func() { sc.Close() })

	// The sentinel must know the replica, and the replica be in sync,
	// before a failover can promote it.
	err := eventually(20*time.Second, func() error {
		replicas, err := sc.Replicas(ctx, "mymaster").Result()
		if err != nil {
			return err
		}
		for _, r := range replicas {
			if r["port"] == strconv.Itoa(replica.Port) && r["master-link-status"] == "ok" && !strings.Contains(r["flags"], "down") {
				return nil
			}
		}
		return errors.New("replica not known to the sentinel yet")
	})
	if err != nil {
		t.Fatal(err)
	}

	s := provision(t, &Store{
		Sentinel:     &Sentinel{MasterName: "mymaster", Addresses: []string{sentinel.Addr}},
		KeyPrefix:    uniquePrefix(),
		WaitReplicas: 1,
		Timeout:      caddy.Duration(2 * time.Second),
	})
	if err := s.Put(ctx, "user/alice", []byte("enrolled"), time.Time{}, true); err != nil {
		t.Fatalf("durable Put: %v", err)
	}
	err = s.Update(ctx, "user/bob", func(storage.Record, bool) ([]byte, time.Time, storage.Op, error) {
		return []byte("enrolled"), time.Time{}, storage.WriteDurable, nil
	})
	if err != nil {
		t.Fatalf("durable Update: %v", err)
	}
	if n, err := s.Incr(ctx, "lock/alice", 1, time.Time{}); err != nil || n != 1 {
		t.Fatalf("Incr = %d, %v", n, err)
	}

	t0 := time.Now()
	if err := sc.Failover(ctx, "mymaster").Err(); err != nil {
		t.Fatalf("SENTINEL FAILOVER: %v", err)
	}
	err = eventually(30*time.Second, func() error {
		addr, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		if err != nil {
			return err
		}
		if addr[1] != strconv.Itoa(replica.Port) {
			return errors.New("the master is still " + addr[0] + ":" + addr[1])
		}
		return nil
	})
	if err != nil {
		t.Fatalf("failover did not happen: %v", err)
	}

	t.Logf("failover after %v", time.Since(t0))
	// Writes reach the new master (the client follows the sentinel), and
	// what was written durably before the failover is there.
	err = eventually(30*time.Second, func() error {
		_, err := s.Incr(ctx, "lock/alice", 1, time.Time{})
		return err
	})
	if err != nil {
		t.Fatalf("Incr after failover: %v", err)
	}
	t.Logf("writes after %v", time.Since(t0))
	for _, key := range []string{"user/alice", "user/bob"} {
		rec, err := s.Get(ctx, key)
		if err != nil || string(rec.Value) != "enrolled" {
			t.Errorf("Get(%s) after failover = %q, %v; want enrolled", key, rec.Value, err)
		}
	}
	if err := s.Put(ctx, "sess/1", []byte("s"), time.Time{}, false); err != nil {
		t.Errorf("Put after failover: %v", err)
	}
	rc := goredis.NewClient(&goredis.Options{Addr: replica.Addr, DisableIdentity: true})
	defer rc.Close()
	if role, err := rc.Do(ctx, "ROLE").Slice(); err != nil || role[0] != "master" {
		t.Errorf("the replica's role = %v, %v; want master", role, err)
	}
}

func TestWaitReplicasWithoutReplicasFails(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	s := provision(t, &Store{URL: "redis://" + srv.Addr, KeyPrefix: uniquePrefix(), WaitReplicas: 1, Timeout: caddy.Duration(400 * time.Millisecond)})

	// A durable write that no replica acknowledges is an error (the
	// caller fails closed); a plain write does not wait.
	err := s.Put(ctx, "user/alice", []byte("enrolled"), time.Time{}, true)
	if err == nil || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Errorf("durable Put = %v, want an error about replicas", err)
	}
	err = s.Update(ctx, "user/bob", func(storage.Record, bool) ([]byte, time.Time, storage.Op, error) {
		return []byte("enrolled"), time.Time{}, storage.WriteDurable, nil
	})
	if err == nil || !strings.Contains(err.Error(), "0 of 1 replicas") {
		t.Errorf("durable Update = %v, want an error about replicas", err)
	}
	if err := s.Put(ctx, "sess/1", []byte("s"), time.Time{}, false); err != nil {
		t.Errorf("plain Put: %v", err)
	}
}
