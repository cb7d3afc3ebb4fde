// Package clientbench measures the two Redis clients the store could use,
// go-redis v9 and rueidis, on the commands the store sends: GET (a session
// lookup), GET then a compare-and-set script (Update), and a GET served
// by each client's server-assisted client-side cache. It is a module of
// its own so the main module does not depend on rueidis.
//
//	cd storage/redis/clientbench && go test -bench . -benchtime 3s
//
// It starts a redis-server on a free port (or uses MFA_BENCH_REDIS=host:port).
package clientbench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"
)

// cas is the store's compare-and-set script, in short.
const cas = `
local cur = redis.call('GET', KEYS[1])
if cur ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
return 1`

var addr string

func TestMain(m *testing.M) {
	addr = os.Getenv("MFA_BENCH_REDIS")
	var cmd *exec.Cmd
	if addr == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		dir, _ := os.MkdirTemp("", "clientbench")
		defer os.RemoveAll(dir)
		addr = "127.0.0.1:" + strconv.Itoa(port)
		cmd = exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--logfile", filepath.Join(dir, "log"))
		if err := cmd.Start(); err != nil {
			fmt.Println("skipping: no redis-server:", err)
			return
		}
		for i := 0; i < 200; i++ {
			if c, err := net.Dial("tcp", addr); err == nil {
				c.Close()
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	code := m.Run()
	if cmd != nil {
		cmd.Process.Kill()
		cmd.Wait()
	}
	os.Exit(code)
}

func goRedis(b *testing.B) *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: addr, DisableIdentity: true})
	b.Cleanup(func() { c.Close() })
	return c
}

func rueidisClient(b *testing.B, cache bool) rueidis.Client {
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: !cache})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

var value = string(make([]byte, 200))

func BenchmarkGet(b *testing.B) {
	ctx := context.Background()
	setup := goRedis(b)
	const keys = 1000
	for i := range keys {
		setup.Set(ctx, fmt.Sprintf("sess/%04d", i), value, 0)
	}
	b.Run("go-redis", func(b *testing.B) {
		c := goRedis(b)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := fmt.Sprintf("sess/%04d", n.Add(1)%keys)
				if err := c.Get(ctx, k).Err(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("rueidis", func(b *testing.B) {
		c := rueidisClient(b, false)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := fmt.Sprintf("sess/%04d", n.Add(1)%keys)
				if err := c.Do(ctx, c.B().Get().Key(k).Build()).Error(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("go-redis client-side cache", func(b *testing.B) {
		c := goredis.NewClient(&goredis.Options{Addr: addr, DisableIdentity: true, Protocol: 3,
			ClientSideCacheConfig: &goredis.ClientSideCacheConfig{}})
		b.Cleanup(func() { c.Close() })
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := fmt.Sprintf("sess/%04d", n.Add(1)%keys)
				if err := c.Get(ctx, k).Err(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("rueidis client-side cache", func(b *testing.B) {
		c := rueidisClient(b, true)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				k := fmt.Sprintf("sess/%04d", n.Add(1)%keys)
				if err := c.DoCache(ctx, c.B().Get().Key(k).Cache(), time.Minute).Error(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func BenchmarkUpdate(b *testing.B) {
	ctx := context.Background()
	b.Run("go-redis", func(b *testing.B) {
		c := goRedis(b)
		script := goredis.NewScript(cas)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			k := fmt.Sprintf("chal/%d", n.Add(1))
			c.Set(ctx, k, "0", 0)
			for pb.Next() {
				cur, err := c.Get(ctx, k).Result()
				if err != nil {
					b.Error(err)
					return
				}
				if err := script.Run(ctx, c, []string{k}, cur, cur).Err(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("rueidis", func(b *testing.B) {
		c := rueidisClient(b, false)
		script := rueidis.NewLuaScript(cas)
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			k := fmt.Sprintf("chal/r%d", n.Add(1))
			c.Do(ctx, c.B().Set().Key(k).Value("0").Build())
			for pb.Next() {
				cur, err := c.Do(ctx, c.B().Get().Key(k).Build()).ToString()
				if err != nil {
					b.Error(err)
					return
				}
				if err := script.Exec(ctx, c, []string{k}, []string{cur, cur}).Error(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}
