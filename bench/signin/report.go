package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// percentile is the p-th percentile (0..100) of sorted durations, by the
// nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(p/100*float64(len(sorted))+0.5) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mb(kb int64) float64 { return float64(kb) / 1024 }

// reporter prints the table of rounds.
type reporter struct {
	w     io.Writer
	ticks uint64 // clock ticks per second
	steps bool   // print each step's percentiles under a round
	total int    // sign-ins completed so far on this Caddy
}

func (rp *reporter) header() {
	fmt.Fprintf(rp.w, "%5s %8s %8s %9s %7s %7s %7s %8s %7s %7s %7s %6s %7s\n",
		"round", "signins", "total", "signins/s", "p50_ms", "p90_ms", "p99_ms", "cpu_ms", "rss_mb", "hwm_mb", "anon_mb", "failed", "tool_ms")
}

// perSignIn is CPU milliseconds per sign-in.
func (rp *reporter) perSignIn(ticks uint64, n int) float64 {
	return float64(ticks) * 1000 / float64(rp.ticks) / float64(n)
}

// round prints one line for a round, and one line of step percentiles
// when asked.
func (rp *reporter) round(i int, res *roundResult) {
	rp.total += res.ok
	slices.Sort(res.signIns)
	rate := float64(res.ok) / res.elapsed.Seconds()
	cpu, rss, hwm, anon, self := "-", "-", "-", "-", "-"
	if res.ok > 0 {
		self = fmt.Sprintf("%.2f", rp.perSignIn(res.self, res.ok))
	}
	if res.hasProc {
		if res.ok > 0 {
			cpu = fmt.Sprintf("%.2f", rp.perSignIn(res.after.cpuTicks-res.before.cpuTicks, res.ok))
		}
		rss = fmt.Sprintf("%.1f", mb(res.after.rssKB))
		hwm = fmt.Sprintf("%.1f", mb(res.after.hwmKB))
		anon = fmt.Sprintf("%.1f", mb(res.after.anonKB))
	}
	fmt.Fprintf(rp.w, "%5d %8d %8d %9.1f %7.2f %7.2f %7.2f %8s %7s %7s %7s %6d %7s\n",
		i, res.ok, rp.total, rate,
		ms(percentile(res.signIns, 50)), ms(percentile(res.signIns, 90)), ms(percentile(res.signIns, 99)),
		cpu, rss, hwm, anon, res.failed, self)
	if rp.steps {
		var parts []string
		for s, d := range res.steps {
			if len(d) == 0 {
				continue
			}
			slices.Sort(d)
			parts = append(parts, fmt.Sprintf("%s %.2f/%.2f", stepNames[s], ms(percentile(d, 50)), ms(percentile(d, 99))))
		}
		fmt.Fprintf(rp.w, "      steps p50/p99 ms: %s\n", strings.Join(parts, ", "))
	}
	if res.userWaits > 0 {
		fmt.Fprintf(rp.w, "      %d sign-ins waited %.1f s in all for a user with a fresh TOTP time step: signins/s counts that wait; raise -users\n", res.userWaits, res.waited.Seconds())
	}
	for _, e := range res.errs {
		fmt.Fprintf(rp.w, "      failed: %s\n", e)
	}
}
