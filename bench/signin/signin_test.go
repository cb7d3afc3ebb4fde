package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddymfa/caddy-mfa"
)

// TestSignIns runs the tool's sign-ins against a real Caddy, started in
// the test process with the tool's own Caddyfile, and checks that every
// sign-in completes: identify, the code (by SMTP or from the app),
// verify, and the protected page with the new session.
func TestSignIns(t *testing.T) {
	home := t.TempDir()
	t.Setenv("XDG_DATA_HOME", filepath.Join(home, "data"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, "config"))
	mail, err := startMailServer("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mail.close)

	for _, tc := range []struct {
		method   string
		signIns  int
		messages int64
	}{
		{method: "email", signIns: 20, messages: 20},
		{method: "totp", signIns: 10},
	} {
		t.Run(tc.method, func(t *testing.T) {
			tt := startInProcess(t, tc.method, mail)
			r, err := newRunner(tt, loadOptions{method: tc.method, clients: 4, users: 6, timeout: 15 * time.Second}, mail)
			if err != nil {
				t.Fatal(err)
			}
			defer r.close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := r.setup(ctx); err != nil {
				t.Fatal(err)
			}
			before := mail.received.Load()
			res, err := r.round(ctx, tc.signIns)
			if err != nil {
				t.Fatal(err)
			}
			if res.ok != tc.signIns || res.failed != 0 || len(res.signIns) != tc.signIns {
				t.Errorf("%d sign-ins completed, %d failed, want %d and 0; errors: %q", res.ok, res.failed, tc.signIns, res.errs)
			}
			if got := mail.received.Load() - before; got != tc.messages {
				t.Errorf("%d messages received, want %d", got, tc.messages)
			}
			if !res.hasProc || res.after.rssKB <= 0 || res.after.hwmKB < res.after.rssKB || res.after.cpuTicks < res.before.cpuTicks {
				t.Errorf("process sample before %+v, after %+v", res.before, res.after)
			}
			var out bytes.Buffer
			rp := &reporter{w: &out, ticks: clockTicks(), steps: true}
			rp.header()
			rp.round(1, res)
			if lines := strings.Count(out.String(), "\n"); lines != 3 || !strings.Contains(out.String(), "verify") {
				t.Errorf("report:\n%s", out.String())
			}
		})
	}
	if n := mail.unclaimed.Load(); n != 0 {
		t.Errorf("%d messages were not claimed by a sign-in", n)
	}
}

// startInProcess loads the tool's Caddyfile for method into Caddy in the
// test process and stops it when the test ends, before its Badger
// directory is removed.
func startInProcess(t *testing.T, method string, mail *mailServer) target {
	t.Helper()
	site, err1 := freePort()
	admin, err2 := freePort()
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	sc := siteConfig{method: method, sitePort: site, adminAddr: fmt.Sprintf("127.0.0.1:%d", admin),
		smtpAddr: mail.addr, storage: "badger " + filepath.Join(t.TempDir(), "badger"), domain: "example.com"}
	cfg, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile(sc)), nil)
	if err != nil {
		t.Fatalf("adapting the Caddyfile: %v\n%s", err, caddyfile(sc))
	}
	if len(warnings) > 0 {
		t.Fatalf("adapting the Caddyfile: %v", warnings)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading the config: %v", err)
	}
	t.Cleanup(func() {
		if err := caddy.Stop(); err != nil {
			t.Errorf("stopping caddy: %v", err)
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", site)
	if err := waitReady(context.Background(), base+"/.mfa/", nil); err != nil {
		t.Fatal(err)
	}
	return target{base: base, admin: "http://" + sc.adminAddr, pid: os.Getpid(), domain: "example.com"}
}

// TestCaddyfileAdapts checks that every Caddyfile the tool writes is one
// Caddy accepts.
func TestCaddyfileAdapts(t *testing.T) {
	for _, tc := range []struct {
		name string
		sc   siteConfig
	}{
		{"email", siteConfig{method: "email"}},
		{"email with workers", siteConfig{method: "email", workers: 8}},
		{"totp", siteConfig{method: "totp"}},
		{"plain", siteConfig{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := tc.sc
			sc.sitePort, sc.adminAddr, sc.smtpAddr, sc.storage, sc.domain = 8080, "127.0.0.1:2019", "127.0.0.1:2525", "badger /tmp/x", "example.com"
			if _, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile(sc)), nil); err != nil {
				t.Errorf("%v\n%s", err, caddyfile(sc))
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{50, 50}, {90, 90}, {99, 99}, {100, 100}, {0, 1}} {
		if got := percentile(d, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("empty: %v", got)
	}
}

// The request bodies the tool writes by hand are the JSON objects
// encoding/json reads back, whatever the values hold.
func TestFieldsJSON(t *testing.T) {
	for _, v := range []string{"", "u1@example.com", `q"uo\te`, "ctl\x00\x1f\n", "ünï ✓"} {
		var got map[string]string
		if err := json.Unmarshal(fields{"username", v, "csrf_token", "x"}.appendJSON(nil), &got); err != nil || got["username"] != v || got["csrf_token"] != "x" {
			t.Errorf("%q: got %q, %v", v, got, err)
		}
	}
}

// The code is found in the raw message when its line is there, and in
// the parsed text otherwise; a message without one gives none.
func TestCodeIn(t *testing.T) {
	for raw, want := range map[string]string{
		"Subject: x\r\n\r\nYour code:\r\n\r\n    123456\r\n\r\nbye\r\n":                        "123456",
		"Subject: x\r\n\r\n<p dir=\"ltr\">123456</p>\r\n":                                      "",
		"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\nICAgIDk4NzY1NAo=\r\n":          "987654",
		"Subject: x\r\n\r\nno code here, 12345678 inline\r\n\t1234567890123\r\n    12a456\r\n": "",
	} {
		if got := codeIn([]byte(raw)); got != want {
			t.Errorf("%q: code %q, want %q", raw, got, want)
		}
	}
}

// Cookies are kept, replaced and deleted (Max-Age=0) by name.
func TestBrowserCookies(t *testing.T) {
	b := &browser{}
	b.setCookie("mfa_flow=a; Path=/; HttpOnly")
	b.setCookie("mfa_lang=de; Path=/")
	b.setCookie("mfa_flow=b; Path=/")
	b.setCookie("mfa_lang=; Path=/; Expires=Thu, 01 Jan 1970 00:00:01 GMT; Max-Age=0")
	b.setCookie("mfa_sess=c; Path=/; Max-Age=43200")
	if want := []cookie{{"mfa_flow", "b"}, {"mfa_sess", "c"}}; !slices.Equal(b.cookies, want) {
		t.Errorf("cookies %v, want %v", b.cookies, want)
	}
}

// The tool's HTTP client reads answers with a length, chunked answers and
// answers that close the connection, sends the cookie line and JSON body
// it is given, and sends a request again on a new connection when a kept
// one was closed while idle.
func TestHTTPConn(t *testing.T) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/len":
			http.SetCookie(w, &http.Cookie{Name: "a", Value: "1"})
			http.SetCookie(w, &http.Cookie{Name: "b", Value: "2"})
			fmt.Fprintf(w, "%s %s %s %s", r.Method, r.Header.Get("Cookie"), r.Header.Get("Content-Type"), body)
		case "/chunked":
			w.Write([]byte("part one, "))
			w.(http.Flusher).Flush()
			w.Write([]byte("part two"))
		case "/close":
			w.Header().Set("Connection", "close")
			w.Write([]byte("bye"))
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	h := &httpConn{addr: host, host: host}
	defer h.close()
	var got []string
	ans := &httpAnswer{body: new(bytes.Buffer), cookies: func(c string) { got = append(got, c) }}
	if err := h.roundTrip(t.Context(), "POST", "/len", "x=1; y=2", []byte(`{"k":"v"}`), ans); err != nil {
		t.Fatal(err)
	}
	if want := `POST x=1; y=2 application/json {"k":"v"}`; ans.status != 200 || ans.body.String() != want {
		t.Fatalf("%d %q, want 200 %q", ans.status, ans.body, want)
	}
	if !slices.Equal(got, []string{"a=1", "b=2"}) {
		t.Fatalf("cookies %q", got)
	}
	if err := h.roundTrip(t.Context(), "GET", "/chunked", "", nil, ans); err != nil || ans.body.String() != "part one, part two" {
		t.Fatalf("chunked: %q %v", ans.body, err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for two requests, want 1", n)
	}
	if err := h.roundTrip(t.Context(), "GET", "/close", "", nil, ans); err != nil || ans.body.String() != "bye" {
		t.Fatalf("close: %q %v", ans.body, err)
	}
	if err := h.roundTrip(t.Context(), "GET", "/len", "", nil, ans); err != nil || ans.body.String() != "GET   " {
		t.Fatalf("after close: %q %v", ans.body, err)
	}
	// The server drops its idle connections: the next request redials.
	srv.CloseClientConnections()
	if err := h.roundTrip(t.Context(), "GET", "/len", "", nil, ans); err != nil || ans.status != 200 {
		t.Fatalf("after the server closed the idle connection: %d %v", ans.status, err)
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}
