package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// The tests with several Caddy nodes run real "caddy run" processes built
// from ./cmd/caddy, on free ports, so that each node has its own memory
// (its own session cache) as behind a load balancer. They share one Redis
// and one SMTP server in the test process. A client's cookie jar ignores
// ports, so one browser carries its cookies from node to node as it would
// behind one host name.

// nodeBinary is the Caddy built once per test binary.
var nodeBinary struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// TestMain removes the Caddy built for the node tests, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	if nodeBinary.dir != "" {
		_ = os.RemoveAll(nodeBinary.dir)
	}
	os.Exit(code)
}

// caddyBinary builds ./cmd/caddy on first use and returns its path.
func caddyBinary(t *testing.T) string {
	t.Helper()
	nodeBinary.once.Do(func() {
		if nodeBinary.dir, nodeBinary.err = os.MkdirTemp("", "mfa-nodes-"); nodeBinary.err != nil {
			return
		}
		nodeBinary.path = filepath.Join(nodeBinary.dir, "caddy")
		cmd := exec.Command("go", "build", "-o", nodeBinary.path, "github.com/caddymfa/caddy-mfa/cmd/caddy")
		if out, err := cmd.CombinedOutput(); err != nil {
			nodeBinary.err = fmt.Errorf("building caddy: %w: %s", err, out)
		}
	})
	if nodeBinary.err != nil {
		t.Fatal(nodeBinary.err)
	}
	return nodeBinary.path
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// node is one "caddy run" process.
type node struct {
	name  string
	url   string // the site, http://127.0.0.1:<port>
	admin string // the admin endpoint, http://127.0.0.1:<port>
	dir   string
	cmd   *exec.Cmd
	done  chan struct{}
}

// nodeSite is what every node of a test serves: one site on its own port
// whose mfa block is mfa, behind basic_auth for the users of nodeUsers,
// in front of upstream.
type nodeSite struct {
	mfa      string
	upstream *upstream
	env      []string // more environment variables for the processes
}

// nodeUsers are the basic_auth users of a node site; all have
// alicePassword.
var nodeUsers = []string{"alice", "bob", "carol", "dave", "erin"}

func (s nodeSite) caddyfile(t *testing.T, sitePort, adminPort int) string {
	t.Helper()
	hash := bcryptHash(t, alicePassword)
	var b strings.Builder
	fmt.Fprintf(&b, `{
	admin 127.0.0.1:%d
	persist_config off
	auto_https off
	grace_period 1ns
	skip_install_trust
}
http://127.0.0.1:%d {
	basic_auth {
`, adminPort, sitePort)
	for _, u := range nodeUsers {
		fmt.Fprintf(&b, "\t\t%s %s\n", u, hash)
	}
	// The nodes listen on different ports of one machine, so their
	// default realms would differ: like nodes behind a load balancer
	// whose addresses differ, they name the realm they share.
	fmt.Fprintf(&b, `	}
	mfa {
		realm cluster
%s
	}
	reverse_proxy %s {
		header_up X-Mfa-User {http.auth.mfa.user}
		header_up X-Mfa-Method {http.auth.mfa.method}
	}
}
`, s.mfa, s.upstream.addr())
	return b.String()
}

// startNodes starts n Caddy processes serving s and waits until each
// answers. They are killed when the test ends.
func startNodes(t *testing.T, n int, s nodeSite) []*node {
	t.Helper()
	bin := caddyBinary(t)
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = startNode(t, bin, string(rune('A'+i)), s)
	}
	return nodes
}

func startNode(t *testing.T, bin, name string, s nodeSite) *node {
	t.Helper()
	site, admin := freePort(t), freePort(t)
	nd := &node{
		name:  name,
		url:   fmt.Sprintf("http://127.0.0.1:%d", site),
		admin: fmt.Sprintf("http://127.0.0.1:%d", admin),
		dir:   t.TempDir(),
		done:  make(chan struct{}),
	}
	config := filepath.Join(nd.dir, "Caddyfile")
	if err := os.WriteFile(config, []byte(s.caddyfile(t, site, admin)), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(nd.dir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	nd.cmd = exec.Command(bin, "run", "--config", config, "--adapter", "caddyfile")
	nd.cmd.Dir = nd.dir
	nd.cmd.Stdout, nd.cmd.Stderr = logFile, logFile
	// Caddy's data and config directories stay inside the node's
	// directory.
	nd.cmd.Env = append(os.Environ(), "HOME="+nd.dir, "XDG_DATA_HOME="+nd.dir, "XDG_CONFIG_HOME="+nd.dir)
	nd.cmd.Env = append(nd.cmd.Env, s.env...)
	if err := nd.cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting node %s: %v", name, err)
	}
	go func() {
		_ = nd.cmd.Wait()
		logFile.Close()
		close(nd.done)
	}()
	t.Cleanup(func() {
		nd.kill()
		if t.Failed() {
			t.Logf("node %s log:\n%s", name, nd.log())
		}
	})
	if err := nd.waitReady(30 * time.Second); err != nil {
		t.Fatalf("node %s: %v\n%s", name, err, nd.log())
	}
	return nd
}

// waitReady polls the site until it answers.
func (nd *node) waitReady(timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-nd.done:
			return fmt.Errorf("exited while starting")
		default:
		}
		if resp, err := hc.Get(nd.url + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("not answering after %v", timeout)
}

// kill kills the process and waits until it has exited.
func (nd *node) kill() {
	_ = nd.cmd.Process.Kill()
	select {
	case <-nd.done:
	case <-time.After(10 * time.Second):
	}
}

// adminGet GETs path on the node's admin endpoint and decodes the JSON
// object it answers.
func (nd *node) adminGet(t *testing.T, path string) map[string]any {
	t.Helper()
	resp, err := http.Get(nd.admin + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("node %s: GET %s: status %d: %v", nd.name, path, resp.StatusCode, err)
	}
	return v
}

// log returns the last 40 lines of the node's log.
func (nd *node) log() string {
	b, _ := os.ReadFile(filepath.Join(nd.dir, "caddy.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-40):], "\n")
}

// on returns a copy of c that sends its requests to nd; the copy shares
// c's cookies.
func (c *client) on(nd *node) *client {
	cp := *c
	cp.base = nd.url
	return &cp
}

// messagesTo counts the messages srv received for to.
func messagesTo(srv *smtptest.Server, to string) int {
	n := 0
	for _, m := range srv.Messages() {
		for _, r := range m.To {
			if r == to {
				n++
				break
			}
		}
	}
	return n
}

// codeTo waits for the message to "to" after the first seen ones and
// returns its code.
func codeTo(t *testing.T, srv *smtptest.Server, to string, seen int) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		n := 0
		for _, m := range srv.Messages() {
			for _, r := range m.To {
				if r != to {
					continue
				}
				if n++; n > seen {
					return parseMail(t, m).code(t)
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no message %d for %s", seen+1, to)
	return ""
}

// nodeSignIn signs user in with an emailed code through c, which may be
// on any node.
func nodeSignIn(t *testing.T, c *client, srv *smtptest.Server, user string) {
	t.Helper()
	to := user + "@example.com"
	seen := messagesTo(srv, to)
	if r := c.postJSON("/.mfa/send", map[string]string{"method": "email"}); r.StatusCode != http.StatusOK {
		t.Fatalf("send on %s: status %d: %s", c.base, r.StatusCode, r.body)
	}
	r := verify(t, c, codeTo(t, srv, to, seen))
	if r.StatusCode != http.StatusOK || r.json(t)["step"] != "done" {
		t.Fatalf("verify on %s: status %d: %s", c.base, r.StatusCode, r.body)
	}
}

// nodeUsersBlock is the users block of nodeUsers, each with the address
// <user>@example.com.
func nodeUsersBlock() string {
	var b strings.Builder
	b.WriteString("\t\tusers {\n")
	for _, u := range nodeUsers {
		b.WriteString("\t\t\t" + u + " email " + u + "@example.com\n")
	}
	b.WriteString("\t\t}")
	return b.String()
}

// nodeMFA is the mfa block of the node tests, on the store given by the
// storage line.
func nodeMFA(srv *smtptest.Server, storage string) string {
	return `		` + storage + `
		secret_key ` + testSecret + `
		lockout 3 15m
` + nodeUsersBlock() + `
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			max_attempts 3
			throttle {
				per_hour 1000
				per_5m 1000
				per_ip_per_hour 1000
				per_user_per_hour 4
				per_destination_per_hour 1000
				cooldown off
			}
		}
		totp {
			issuer Example
			enroll verified
		}`
}
