//go:build unix

package email

import (
	"context"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// BenchmarkDeliverStorm: code messages from 32 concurrent sign-ins, each
// waiting for its outcome, through the default 2 delivery workers to the
// in-process go-smtp server (STARTTLS, AUTH) on loopback. The time and
// allocations per message include the server's, as cpu-us (the process's
// CPU time per message); p50-ms and p99-ms are how long a Deliver waited
// for its message to be sent.
func BenchmarkDeliverStorm(b *testing.B) {
	s := smtptest.NewServer(b, smtptest.Options{Username: "mailer", Password: "pw"})
	c := &Config{
		TransportRaw: smtpJSON(s.Host, s.Port, map[string]any{"username": "mailer", "password": "pw", "ca_file": s.CAFile}),
		From:         testFrom,
		ch:           delivery.Channel[*Message]{Logger: zap.NewNop()},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := c.Provision(ctx, nil); err != nil {
		b.Fatal(err)
	}
	defer c.Cleanup()
	m := testMessage()
	if err := c.Deliver(b.Context(), m); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(16)
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	var (
		mu    sync.Mutex
		waits []time.Duration
	)
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			start := time.Now()
			if err := c.Deliver(context.Background(), m); err != nil {
				b.Error(err)
			}
			mine = append(mine, time.Since(start))
		}
		mu.Lock()
		waits = append(waits, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-cpu0)/1e3/float64(b.N), "cpu-us")
	slices.Sort(waits)
	b.ReportMetric(float64(waits[len(waits)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(waits[len(waits)*99/100])/1e6, "p99-ms")
	if n := len(s.Messages()); n < b.N {
		b.Errorf("server got %d messages, want %d", n, b.N+1)
	}
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
