// Command signin loads a Caddy running caddy-mfa with complete sign-ins
// and reports what they cost: sign-ins per second, latency percentiles of
// a whole sign-in and of each step, Caddy's CPU time per sign-in, and
// Caddy's memory.
//
//	go run ./bench/signin -method email -clients 32 -rounds 5 -signins 4000
//	go run ./bench/signin -method totp
//
// By default it builds ./cmd/caddy (or runs -caddy), writes a Caddyfile
// in standalone mode (allow_emails *@example.com, Badger in a temporary
// directory, every send cap and the cooldown off) and starts Caddy on
// 127.0.0.1. Before that it measures an idle Caddy serving a plain site,
// as the baseline for "memory above an idle plain Caddy".
//
// Each sign-in is what a script or SPA does through the JSON contract
// (Accept: application/json), with its own cookies, as user u<N>@example.com:
//
//   - email: GET /.mfa/, POST /.mfa/identify (which sends the code), the
//     code read from the message that arrives at the tool's own SMTP
//     server, POST /.mfa/verify, then GET / with the new session, which
//     must answer 200 "ok".
//   - totp: users are first enrolled through the admin API (POST
//     /mfa/users/<name>/enroll); then GET /.mfa/, POST /.mfa/identify
//     (which answers the method choice), POST /.mfa/verify with a code
//     computed from the enrolled secret, GET /. The replay guard accepts
//     one code per time step per user, so clients take users from a pool
//     ordered by the next step each user may use; with too few -users for
//     the rate, clients wait for the next step and the tool says so.
//
// Rounds run back to back on one Caddy, so a cost that grows with the
// number of sign-ins already made shows as a rising CPU per sign-in.
// Caddy's CPU comes from utime+stime in /proc/<pid>/stat before and after
// each round, its memory from VmRSS and VmHWM (the peak) in
// /proc/<pid>/status.
//
// To load a Caddy started elsewhere, pass -url (and -pid for CPU and
// memory, -admin for totp, -smtp for the address Caddy's smtp transport
// sends to, with tls none). Its config must let u<N>@<-domain> sign in
// standalone without send caps; print the tool's own with -print-config.
// Traffic goes only to 127.0.0.1 (or another loopback address).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "signin:", err)
		}
		os.Exit(1)
	}
}

type config struct {
	method      string
	clients     int
	rounds      int
	signins     int
	users       int
	caddy       string
	url         string
	admin       string
	pid         int
	smtp        string
	domain      string
	timeout     time.Duration
	steps       bool
	profile     string
	profileSecs int
	heapDir     string
	toolProfile string
	keep        bool
	workers     int
	printConfig bool
	redis       string
}

// storeName is the store the tool runs Caddy on: badger or redis.
func (c config) storeName() string {
	if c.redis != "" {
		return "redis"
	}
	return "badger"
}

// storage returns the storage directive's arguments: the Redis URL of
// -redis, or a Badger directory.
func (c config) storage(badgerDir string) string {
	if c.redis != "" {
		return "redis " + c.redis
	}
	return "badger " + badgerDir
}

func parseFlags(args []string) (config, error) {
	var c config
	fs := flag.NewFlagSet("signin", flag.ContinueOnError)
	fs.StringVar(&c.method, "method", "email", "sign-in method: email or totp")
	fs.IntVar(&c.clients, "clients", 32, "concurrent clients")
	fs.IntVar(&c.rounds, "rounds", 5, "rounds, back to back on one Caddy")
	fs.IntVar(&c.signins, "signins", 4000, "sign-ins per round")
	fs.IntVar(&c.users, "users", 0, "distinct users (default: 1000 for email, 4000 for totp; at least -clients)")
	fs.StringVar(&c.caddy, "caddy", "", "Caddy binary with caddy-mfa (default: build ./cmd/caddy)")
	fs.StringVar(&c.url, "url", "", "load a running Caddy at this loopback URL instead of starting one")
	fs.StringVar(&c.admin, "admin", "", "with -url: the admin endpoint, e.g. http://127.0.0.1:2019 (totp, -profile)")
	fs.IntVar(&c.pid, "pid", 0, "with -url: the Caddy process, for CPU and memory")
	fs.StringVar(&c.smtp, "smtp", "127.0.0.1:0", "where the tool's SMTP server listens (email)")
	fs.StringVar(&c.domain, "domain", "example.com", "users are u<N>@<domain>")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "bound on one sign-in")
	fs.BoolVar(&c.steps, "steps", true, "print each step's p50/p99 under every round")
	fs.StringVar(&c.profile, "profile", "", "write a CPU profile of Caddy during the last round to this file (needs the admin endpoint)")
	fs.IntVar(&c.profileSecs, "profile-seconds", 10, "length of the -profile")
	fs.StringVar(&c.heapDir, "heap-profiles", "", "after each round, write a heap profile of Caddy (after a GC) to heap-<round>.pprof in this directory (needs the admin endpoint)")
	fs.StringVar(&c.toolProfile, "tool-profile", "", "write a CPU profile of this tool (its clients and SMTP server) during the last round to this file")
	fs.IntVar(&c.workers, "workers", 0, "email delivery workers in the Caddyfile (default: Caddy's default, 2)")
	fs.StringVar(&c.redis, "redis", "", "keep Caddy's state in the Redis at this URL (redis://127.0.0.1:6379) instead of Badger; the tool flushes nothing, so use an empty database")
	fs.BoolVar(&c.keep, "keep", false, "keep the temporary directory (Caddyfile, Caddy's log, Badger)")
	fs.BoolVar(&c.printConfig, "print-config", false, "print the Caddyfile the tool would start Caddy with, and exit")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	switch c.method {
	case "email", "totp":
	default:
		return c, fmt.Errorf("-method %q: email or totp", c.method)
	}
	if c.clients < 1 || c.rounds < 1 || c.signins < 1 {
		return c, errors.New("-clients, -rounds and -signins must be at least 1")
	}
	if c.users == 0 {
		c.users = 1000
		if c.method == "totp" {
			c.users = 4000
		}
	}
	c.users = max(c.users, c.clients)
	for _, u := range []string{c.url, c.admin} {
		if u != "" && !loopbackURL(u) {
			return c, fmt.Errorf("%s: the tool loads only loopback addresses", u)
		}
	}
	if c.smtp != "" && !loopbackHost(hostOf(c.smtp)) {
		return c, fmt.Errorf("-smtp %s: listen on a loopback address", c.smtp)
	}
	return c, nil
}

func loopbackURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "http" && loopbackHost(u.Hostname())
}

func loopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

func run(ctx context.Context, args []string, out io.Writer) (retErr error) {
	c, err := parseFlags(args)
	if err != nil {
		return err
	}
	if c.printConfig {
		fmt.Fprint(out, caddyfile(siteConfig{method: c.method, sitePort: 8080, adminAddr: "127.0.0.1:2019",
			smtpAddr: "127.0.0.1:2525", storage: c.storage("/tmp/mfa-bench"), domain: c.domain, workers: c.workers}))
		return nil
	}

	if c.heapDir != "" {
		if err := os.MkdirAll(c.heapDir, 0o755); err != nil {
			return err
		}
	}
	var mail *mailServer
	if c.method == "email" {
		if mail, err = startMailServer(c.smtp); err != nil {
			return fmt.Errorf("starting the SMTP server: %w", err)
		}
		defer mail.close()
	}

	t := target{base: c.url, admin: c.admin, pid: c.pid, domain: c.domain}
	if c.url == "" {
		dir, err := os.MkdirTemp("", "mfa-signin-")
		if err != nil {
			return err
		}
		if c.keep {
			fmt.Fprintf(out, "# keeping %s\n", dir)
		} else {
			defer os.RemoveAll(dir)
		}
		bin := c.caddy
		if bin == "" {
			fmt.Fprintln(out, "# building ./cmd/caddy")
			if bin, err = buildCaddy(ctx, dir); err != nil {
				return err
			}
		}
		plain, err := idleRSS(ctx, bin, filepath.Join(dir, "plain"))
		if err != nil {
			return fmt.Errorf("measuring a plain Caddy: %w", err)
		}
		var idle procSample
		p, tt, err := startTarget(ctx, bin, filepath.Join(dir, "mfa"), siteConfig{method: c.method, domain: c.domain, workers: c.workers, storage: c.storage(filepath.Join(dir, "mfa", "badger"))}, mail)
		if err != nil {
			return err
		}
		defer p.stop()
		t = tt
		if idle, err = settledRSS(ctx, p.pid()); err != nil {
			return err
		}
		fmt.Fprintf(out, "# caddy %s, pid %d; idle RSS: plain site %.1f MB (anon %.1f), mfa site (store open: %s) %.1f MB (anon %.1f)\n",
			bin, p.pid(), mb(plain.rssKB), mb(plain.anonKB), c.storeName(), mb(idle.rssKB), mb(idle.anonKB))
		defer func() {
			if retErr != nil {
				fmt.Fprintf(os.Stderr, "caddy's log ends:\n%s\n", p.logTail())
			}
		}()
	}
	if c.pid > 0 {
		if _, err := sampleProc(c.pid); err != nil {
			return fmt.Errorf("-pid %d: %w", c.pid, err)
		}
	}

	r, err := newRunner(t, loadOptions{method: c.method, clients: c.clients, users: c.users, timeout: c.timeout}, mail)
	if err != nil {
		return err
	}
	defer r.close()
	start := time.Now()
	if err = r.setup(ctx); err != nil {
		return err
	}
	if c.method == "totp" {
		fmt.Fprintf(out, "# enrolled %d users in %.1f s\n", c.users, time.Since(start).Seconds())
	}
	fmt.Fprintf(out, "# method %s, %d clients, %d users, %d rounds of %d sign-ins\n", c.method, c.clients, c.users, c.rounds, c.signins)

	rp := &reporter{w: out, ticks: clockTicks(), steps: c.steps}
	rp.header()
	for i := 1; i <= c.rounds; i++ {
		var profDone chan error
		if i == c.rounds && c.profile != "" {
			profDone = make(chan error, 1)
			go func() {
				profDone <- fetchPprof(ctx, t.admin, fmt.Sprintf("profile?seconds=%d", c.profileSecs), time.Duration(c.profileSecs+30)*time.Second, c.profile)
			}()
		}
		var toolProf *os.File
		if i == c.rounds && c.toolProfile != "" {
			if toolProf, err = os.Create(c.toolProfile); err != nil {
				return err
			}
			if err = pprof.StartCPUProfile(toolProf); err != nil {
				toolProf.Close()
				return err
			}
		}
		res, rerr := r.round(ctx, c.signins)
		if toolProf != nil {
			pprof.StopCPUProfile()
			if err = toolProf.Close(); err != nil {
				return err
			}
			fmt.Fprintf(out, "# the tool's profile of round %d written to %s\n", i, c.toolProfile)
		}
		if res != nil {
			rp.round(i, res)
		}
		if profDone != nil {
			if perr := <-profDone; perr != nil {
				fmt.Fprintf(out, "# profile: %v\n", perr)
			} else {
				fmt.Fprintf(out, "# profile of round %d written to %s (the profiler's own cost is in that round)\n", i, c.profile)
			}
		}
		if err = rerr; err != nil {
			return err
		}
		if err = ctx.Err(); err != nil {
			return err
		}
		if c.heapDir != "" {
			file := filepath.Join(c.heapDir, fmt.Sprintf("heap-%d.pprof", i))
			if err = fetchPprof(ctx, t.admin, "heap?gc=1", 30*time.Second, file); err != nil {
				return fmt.Errorf("heap profile: %w", err)
			}
		}
	}
	fmt.Fprintln(out, "# cpu_ms: Caddy's CPU time (user+system) per completed sign-in; rss_mb, hwm_mb: Caddy's VmRSS after the round and its peak so far;")
	fmt.Fprintln(out, "# anon_mb: Caddy's RssAnon after the round, its own memory (VmRSS less the pages of mapped files: the executable, Badger's tables and logs);")
	fmt.Fprintln(out, "# tool_ms: this tool's own CPU time per sign-in (clients and SMTP server), which competes with Caddy on a small machine")
	if mail != nil {
		fmt.Fprintf(out, "# messages received %d, not claimed by a sign-in %d\n", mail.received.Load(), mail.unclaimed.Load())
	}
	return nil
}

// startTarget starts Caddy in dir with the load config sc, on free
// ports.
func startTarget(ctx context.Context, bin, dir string, sc siteConfig, mail *mailServer) (*caddyProcess, target, error) {
	site, err1 := freePort()
	admin, err2 := freePort()
	if err := errors.Join(err1, err2); err != nil {
		return nil, target{}, err
	}
	sc.sitePort, sc.adminAddr = site, fmt.Sprintf("127.0.0.1:%d", admin)
	if sc.storage == "" {
		sc.storage = "badger " + filepath.Join(dir, "badger")
	}
	if mail != nil {
		sc.smtpAddr = mail.addr
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", site)
	p, err := startCaddy(ctx, bin, dir, caddyfile(sc), base+"/.mfa/")
	if err != nil {
		return nil, target{}, err
	}
	return p, target{base: base, admin: "http://" + sc.adminAddr, pid: p.pid(), domain: sc.domain}, nil
}

// idleRSS starts a Caddy serving a plain site (no mfa), lets it settle
// and returns its memory.
func idleRSS(ctx context.Context, bin, dir string) (procSample, error) {
	p, _, err := startTarget(ctx, bin, dir, siteConfig{domain: "example.com"}, nil)
	if err != nil {
		return procSample{}, err
	}
	defer p.stop()
	return settledRSS(ctx, p.pid())
}

// settledRSS waits a second after start, so that start-up work is done,
// and reads the memory.
func settledRSS(ctx context.Context, pid int) (procSample, error) {
	select {
	case <-ctx.Done():
		return procSample{}, ctx.Err()
	case <-time.After(time.Second):
	}
	return sampleProc(pid)
}

// fetchPprof asks Caddy's admin endpoint for the profile at
// /debug/pprof/<what> and writes it to file.
func fetchPprof(ctx context.Context, admin, what string, timeout time.Duration, file string) error {
	if admin == "" {
		return errors.New("no admin endpoint (-admin)")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/debug/pprof/"+what, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: timeout}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
