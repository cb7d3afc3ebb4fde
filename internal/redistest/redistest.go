// Package redistest runs real redis-server processes for tests: a server
// (or a Sentinel) on a free 127.0.0.1 port, in a temporary directory, with
// the configuration lines a test gives, stopped when the test ends.
//
// Tests need Debian's redis-server (and redis-sentinel, which is the same
// binary started with --sentinel). Without it a test is skipped with a
// message that says what to install, unless the CI environment variable is
// set, in which case the test fails: CI installs the server, so a missing
// binary there is a broken setup, not a reason to pass.
package redistest

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startTimeout bounds how long a server may take to answer PING.
const startTimeout = 15 * time.Second

// Binary returns the path of redis-server, or skips (fails on CI) the test
// when it is not installed.
func Binary(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err == nil {
		return path
	}
	msg := "redis-server not found (apt-get install redis-server redis-sentinel): " + err.Error()
	if os.Getenv("CI") != "" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}

// Server is one redis-server (or Sentinel) process.
type Server struct {
	// Addr is host:port of the server's only listener, plain or TLS.
	Addr string
	// Port is the port of Addr.
	Port int
	// Dir is the server's working directory: its config, log, AOF and
	// RDB files.
	Dir string

	tb       testing.TB
	bin      string
	conf     string
	sentinel bool
	tls      bool
	cmd      *exec.Cmd
	exited   chan struct{}
}

// Start starts a redis-server on a free port and waits until it answers.
// Each line of config is added to the configuration; "{port}" in a line is
// replaced by the server's port. A line starting with "tls-port" makes the
// readiness check speak TLS (give "port 0" to turn the plain listener off).
func Start(tb testing.TB, config ...string) *Server {
	tb.Helper()
	return start(tb, false, config)
}

// StartSentinel starts a Sentinel (redis-server --sentinel) on a free port.
// config holds its directives, such as
// "sentinel monitor mymaster 127.0.0.1 6379 1".
func StartSentinel(tb testing.TB, config ...string) *Server {
	tb.Helper()
	return start(tb, true, config)
}

func start(tb testing.TB, sentinel bool, config []string) *Server {
	tb.Helper()
	bin := Binary(tb)
	port := FreePort(tb)
	dir := tb.TempDir()
	lines := []string{
		"bind 127.0.0.1",
		"port {port}",
		"dir " + dir,
		"protected-mode no",
		"daemonize no",
		"logfile " + filepath.Join(dir, "redis.log"),
	}
	if !sentinel {
		lines = append(lines, `save ""`, "appendonly no")
	}
	lines = append(lines, config...)
	s := &Server{
		Addr:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Port:     port,
		Dir:      dir,
		tb:       tb,
		bin:      bin,
		conf:     filepath.Join(dir, "redis.conf"),
		sentinel: sentinel,
	}
	var b strings.Builder
	for _, l := range lines {
		if strings.HasPrefix(l, "tls-port") {
			s.tls = true
		}
		b.WriteString(strings.ReplaceAll(l, "{port}", strconv.Itoa(port)))
		b.WriteByte('\n')
	}
	if err := os.WriteFile(s.conf, []byte(b.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Kill)
	s.Restart()
	return s
}

// Restart starts the server again after Stop or Kill, on the same port,
// directory and configuration, and waits until it answers.
func (s *Server) Restart() {
	s.tb.Helper()
	args := []string{s.conf}
	if s.sentinel {
		args = append(args, "--sentinel")
	}
	s.cmd = exec.Command(s.bin, args...)
	s.exited = make(chan struct{})
	if err := s.cmd.Start(); err != nil {
		s.tb.Fatalf("starting redis-server: %v", err)
	}
	go func(cmd *exec.Cmd, exited chan struct{}) {
		_ = cmd.Wait()
		close(exited)
	}(s.cmd, s.exited)
	if err := s.waitReady(); err != nil {
		s.Kill()
		s.tb.Fatalf("redis-server on %s: %v\n%s", s.Addr, err, s.Log())
	}
}

// waitReady polls the server until it answers PING (an error reply such
// as NOAUTH also shows that it is up).
func (s *Server) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	var err error
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("exited while starting")
		default:
		}
		if err = s.ping(); err == nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("not answering after %v: %w", startTimeout, err)
}

func (s *Server) ping() error {
	var (
		conn net.Conn
		err  error
	)
	d := &net.Dialer{Timeout: time.Second}
	if s.tls {
		conn, err = tls.DialWithDialer(d, "tcp", s.Addr, &tls.Config{InsecureSkipVerify: true})
	} else {
		conn, err = d.Dial("tcp", s.Addr)
	}
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.HasPrefix(line, "-LOADING") {
		return fmt.Errorf("loading")
	}
	if !strings.HasPrefix(line, "+") && !strings.HasPrefix(line, "-") {
		return fmt.Errorf("unexpected reply %q", line)
	}
	return nil
}

// Stop shuts the server down with SIGTERM (it writes its AOF and exits
// cleanly) and waits for it to exit.
func (s *Server) Stop() {
	s.signal(syscall.SIGTERM)
}

// Kill kills the server with SIGKILL and waits for it to exit. It does
// nothing if the server is not running.
func (s *Server) Kill() {
	s.signal(syscall.SIGKILL)
}

func (s *Server) signal(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(sig)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Log returns the server's log file.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	return string(b)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Pause stops the server process (SIGSTOP) without closing its sockets, so
// clients see a server that accepts but never answers.
func (s *Server) Pause() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGSTOP)
	}
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}
