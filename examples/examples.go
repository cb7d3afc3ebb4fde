package examples

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"path"
	"strconv"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile" // the caddyfile adapter
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddymfa/caddy-mfa" // every caddy-mfa module
)

//go:embed */Caddyfile
var caddyfiles embed.FS

// Names lists the examples, in directory order.
func Names() []string {
	matches, err := fs.Glob(caddyfiles, "*/Caddyfile")
	if err != nil {
		panic(err) // the pattern is constant
	}
	names := make([]string, len(matches))
	for i, m := range matches {
		names[i] = path.Dir(m)
	}
	return names
}

// Caddyfile returns the Caddyfile of the named example.
func Caddyfile(name string) ([]byte, error) {
	return caddyfiles.ReadFile(name + "/Caddyfile")
}

// Adapt turns the named example into Caddy's JSON config, as
// "caddy adapt" does, and returns it with the adapter's warnings.
func Adapt(name string) (map[string]any, []caddyconfig.Warning, error) {
	body, err := Caddyfile(name)
	if err != nil {
		return nil, nil, err
	}
	return adapt(name, body)
}

func adapt(name string, body []byte) (map[string]any, []caddyconfig.Warning, error) {
	adapter := caddyconfig.GetAdapter("caddyfile")
	out, warnings, err := adapter.Adapt(body, map[string]any{"filename": name + "/Caddyfile"})
	if err != nil {
		return nil, warnings, fmt.Errorf("adapting %s: %w", name, err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(out, &cfg); err != nil {
		return nil, warnings, fmt.Errorf("decoding adapted %s: %w", name, err)
	}
	return cfg, warnings, nil
}

// Options change how Start runs an example.
type Options struct {
	// Rewrite, if set, edits the adapted JSON config before it is loaded,
	// e.g. to point an SMTP transport at a test server.
	Rewrite func(cfg map[string]any)
	// Port, if set, is the port to listen on instead of a free one: a
	// second node of a cluster listens where the first one did, as the
	// same Caddyfile on another machine would.
	Port int
}

// Server is an example running in this process.
type Server struct {
	// Port is where every listener of the example now listens.
	Port int
	// Dir is Caddy's working directory: relative paths of the Caddyfile,
	// such as ./mailbox, are resolved against it.
	Dir string
	// Config is the JSON config that was loaded.
	Config map[string]any
}

// Start adapts the named example and runs it in this process until the
// test ends. Relative paths resolve in a fresh temporary directory, which
// becomes the working directory for the rest of the test; Caddy's data
// and config directories are temporary too. Every listener moves to one
// free port, and a listener on :443 serves plain HTTP (automatic HTTPS
// off), so tests need neither certificates nor privileged ports. The
// admin endpoint is off.
func Start(t testing.TB, name string, opts Options) *Server {
	t.Helper()
	body, err := Caddyfile(name)
	if err != nil {
		t.Fatal(err)
	}
	return StartCaddyfile(t, name, body, opts)
}

// StartCaddyfile runs a Caddyfile that is not one of the examples, such
// as a test's own, as Start runs an example; name labels its errors.
func StartCaddyfile(t testing.TB, name string, body []byte, opts Options) *Server {
	t.Helper()
	cfg, warnings, err := adapt(name, body)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Errorf("adapting %s: warning: %s", name, w.String())
	}

	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("XDG_DATA_HOME", path.Join(dir, "xdg-data"))
	t.Setenv("XDG_CONFIG_HOME", path.Join(dir, "xdg-config"))

	port := opts.Port
	if port == 0 {
		if port, err = freePort(); err != nil {
			t.Fatal(err)
		}
	}
	if err := relisten(cfg, port); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	cfg["admin"] = map[string]any{"disabled": true, "config": map[string]any{"persist": false}}
	cfg["storage"] = map[string]any{"module": "file_system", "root": path.Join(dir, "caddy-storage")}
	if opts.Rewrite != nil {
		opts.Rewrite(cfg)
	}

	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(raw, true); err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	return &Server{Port: port, Dir: dir, Config: cfg}
}

// relisten moves every listener of the http app to port.
func relisten(cfg map[string]any, port int) error {
	apps, _ := cfg["apps"].(map[string]any)
	httpApp, _ := apps["http"].(map[string]any)
	servers, _ := httpApp["servers"].(map[string]any)
	if len(servers) != 1 {
		return fmt.Errorf("want one http server, the config has %d", len(servers))
	}
	for _, s := range servers {
		srv := s.(map[string]any)
		listen, _ := srv["listen"].([]any)
		for _, l := range listen {
			if _, p, err := net.SplitHostPort(l.(string)); err == nil && p == "443" {
				srv["automatic_https"] = map[string]any{"disable": true}
			}
		}
		srv["listen"] = []any{":" + strconv.Itoa(port)}
	}
	return nil
}

// freePort returns a TCP port nothing listens on right now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Client returns an HTTP client that connects to the example whatever the
// URL's host and port, so tests can use the addresses of the Caddyfile
// ("http://localhost:8080/", "http://app.example.com/"). It keeps cookies
// and does not follow redirects.
func (s *Server) Client() *http.Client {
	jar, _ := cookiejar.New(nil)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Jar: jar,
		// The examples' basic_auth hashes are bcrypt at cost 14, as
		// 'caddy hash-password' makes them. Under the race detector, with
		// the other test packages running beside it on two cores, the
		// first check of a password has taken more than 30 seconds.
		Timeout: 2 * time.Minute,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			},
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// URL is the example's address on this machine, for clients that cannot
// use Client (a browser): http://localhost:<Port> followed by p.
func (s *Server) URL(p string) string {
	return "http://localhost:" + strconv.Itoa(s.Port) + p
}

// Walk calls fn for every JSON object in cfg, depth first.
func Walk(cfg any, fn func(obj map[string]any)) {
	switch v := cfg.(type) {
	case map[string]any:
		fn(v)
		for _, e := range v {
			Walk(e, fn)
		}
	case []any:
		for _, e := range v {
			Walk(e, fn)
		}
	}
}
