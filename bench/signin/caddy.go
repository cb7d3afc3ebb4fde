package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// siteConfig is what the Caddyfile of a load run needs to know.
type siteConfig struct {
	method    string // "email" or "totp"; "" makes a plain site without mfa
	sitePort  int
	adminAddr string // host:port of Caddy's admin endpoint
	smtpAddr  string // host:port of the tool's SMTP server (email)
	storage   string // the storage directive's arguments: "badger <dir>" or "redis <url>"
	domain    string // allow_emails *@<domain>
	workers   int    // email delivery workers; 0 for the default
}

// caddyfile is the config of the Caddy under load: standalone mode for
// *@domain, every send cap and the cooldown off, the lockout as loose as
// it goes, logs at ERROR (the audit lines of every sign-in would
// otherwise be part of what is measured), and a protected site that
// answers 200 "ok". The email method sends through the tool's SMTP
// server without TLS; the totp method has no email block, so
// identifying answers the method choice and sends nothing.
func caddyfile(c siteConfig) string {
	var b strings.Builder
	fmt.Fprintf(&b, `{
	admin %s
	persist_config off
	auto_https off
	default_bind 127.0.0.1
	grace_period 1s
	log {
		level ERROR
	}
}
:%d {
`, c.adminAddr, c.sitePort)
	switch c.method {
	case "email":
		fmt.Fprintf(&b, `	mfa {
		user ""
		allow_emails *@%s
		storage %s
		lockout 100 1m
		email {
			smtp %s %s {
				tls none
				timeout 10s
			}
			from "Sign-in bench <bench@%[1]s>"
			throttle {
				per_hour off
				per_5m off
				per_ip_per_hour off
				per_user_per_hour off
				per_destination_per_hour off
				cooldown off
			}
%[5]s		}
	}
`, c.domain, c.storage, hostOf(c.smtpAddr), portOf(c.smtpAddr), workersBlock(c.workers))
	case "totp":
		fmt.Fprintf(&b, `	mfa {
		user ""
		allow_emails *@%s
		storage %s
		lockout 100 1m
		totp {
			issuer "Sign-in bench"
			enroll off
		}
	}
`, c.domain, c.storage)
	}
	b.WriteString("\trespond \"ok\" 200\n}\n")
	return b.String()
}

func workersBlock(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf("\t\t\tdelivery {\n\t\t\t\tworkers %d\n\t\t\t}\n", n)
}

func hostOf(addr string) string {
	h, _, _ := net.SplitHostPort(addr)
	return h
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before Caddy binds it; then Caddy fails to start and says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// buildCaddy builds ./cmd/caddy of this module into dir.
func buildCaddy(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("finding the module: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("run from inside the caddy-mfa module, or pass -caddy")
	}
	bin := filepath.Join(dir, "caddy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/caddy")
	cmd.Dir = filepath.Dir(gomod)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("building ./cmd/caddy: %w", err)
	}
	return bin, nil
}

// caddyProcess is a Caddy the tool started.
type caddyProcess struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // of Wait, once done is closed
}

// startCaddy runs bin with the Caddyfile in dir and waits until url
// answers. Caddy's data and config directories are inside dir; Caddy dies
// with the tool (Pdeathsig) if the tool is killed.
func startCaddy(ctx context.Context, bin, dir, config, url string) (*caddyProcess, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cfgFile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgFile, []byte(config), 0o600); err != nil {
		return nil, err
	}
	logFile := filepath.Join(dir, "caddy.log")
	logf, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "run", "--config", cfgFile, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"HOME="+dir,
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting caddy: %w", err)
	}
	p := &caddyProcess{cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := waitReady(ctx, url, p.done); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w\n%s", err, p.logTail())
	}
	return p, nil
}

// waitReady polls url until it answers, for at most 30 seconds.
func waitReady(ctx context.Context, url string, exited <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("caddy exited during start")
		case <-ctx.Done():
			return fmt.Errorf("caddy did not answer %s: %w", url, ctx.Err())
		case <-tick.C:
		}
	}
}

// pid is the process ID of Caddy.
func (p *caddyProcess) pid() int { return p.cmd.Process.Pid }

// stop interrupts Caddy, and kills it if it has not exited after 10
// seconds. It may be called more than once.
func (p *caddyProcess) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// logTail is the end of Caddy's log, for error messages.
func (p *caddyProcess) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return ""
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// procSample is what /proc says about a process at one moment.
type procSample struct {
	cpuTicks uint64 // utime + stime
	rssKB    int64  // VmRSS
	hwmKB    int64  // VmHWM, the peak of VmRSS
	// anonKB is RssAnon, the part of VmRSS that is the process's own
	// memory (Go's heap, stacks): the rest (RssFile) is pages of mapped
	// files, Caddy's executable and Badger's tables and logs, which the
	// kernel can drop and read again.
	anonKB int64
}

// sampleProc reads /proc/<pid>/stat and /proc/<pid>/status.
func sampleProc(pid int) (procSample, error) {
	var s procSample
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, the 12th and 13th after it.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 13 {
		return s, fmt.Errorf("unexpected /proc/%d/stat", pid)
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return s, fmt.Errorf("reading /proc/%d/stat: %w", pid, err)
	}
	s.cpuTicks = utime + stime
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "VmRSS":
			dst = &s.rssKB
		case "VmHWM":
			dst = &s.hwmKB
		case "RssAnon":
			dst = &s.anonKB
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return s, fmt.Errorf("reading /proc/%d/status %s: %w", pid, name, err)
		}
		*dst = kb
	}
	return s, sc.Err()
}

// clockTicks is the kernel's clock tick rate (sysconf(_SC_CLK_TCK)), read
// from the auxiliary vector as the C library does; 100 if it cannot be
// read.
func clockTicks() uint64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	for len(b) >= 16 {
		k, v := binary.NativeEndian.Uint64(b), binary.NativeEndian.Uint64(b[8:])
		if k == atClkTck && v > 0 {
			return v
		}
		if k == 0 {
			break
		}
		b = b[16:]
	}
	return 100
}
