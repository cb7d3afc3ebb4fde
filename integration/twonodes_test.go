package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

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

	t.Run("attempts and lockout", func(t *testing.T) {
		c := newClient(t).withBasicAuth("carol", alicePassword)
		to := "carol@example.com"
		seen := messagesTo(srv, to)
		if r := c.on(a).postJSON("/.mfa/send", map[string]string{"method": "email"}); r.StatusCode != http.StatusOK {
			t.Fatalf("send: status %d: %s", r.StatusCode, r.body)
		}
		code := codeTo(t, srv, to, seen)
		csrf := c.on(a).state()["csrf_token"].(string)

		// 500 wrong codes at once on one challenge, alternating nodes.
		const n = 500
		wrong := otherCode(code)
		body, _ := json.Marshal(map[string]string{"method": "email", "code": wrong, "csrf_token": csrf})
		hc := &http.Client{Jar: c.hc.Jar, Timeout: 60 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: n}}
		defer hc.CloseIdleConnections()
		var (
			wg       sync.WaitGroup
			start    = make(chan struct{})
			mu       sync.Mutex
			statuses = map[int]int{}
			errs     = map[string]int{}
			left     = map[int]int{}
			failures atomic.Int64
		)
		for i := range n {
			nd := nodes[i%2]
			wg.Go(func() {
				<-start
				req, _ := http.NewRequest(http.MethodPost, nd.url+"/.mfa/verify", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json")
				req.SetBasicAuth("carol", alicePassword)
				resp, err := hc.Do(req)
				if err != nil {
					failures.Add(1)
					return
				}
				defer resp.Body.Close()
				var v struct {
					Error        string `json:"error"`
					AttemptsLeft *int   `json:"attempts_left"`
				}
				_ = json.NewDecoder(resp.Body).Decode(&v)
				mu.Lock()
				statuses[resp.StatusCode]++
				errs[v.Error]++
				if v.AttemptsLeft != nil {
					left[*v.AttemptsLeft]++
				}
				mu.Unlock()
			})
		}
		close(start)
		wg.Wait()
		t.Logf("answers to %d concurrent wrong codes: statuses %v, errors %v, attempts_left %v, transport failures %d",
			n, statuses, errs, left, failures.Load())
		if failures.Load() > 0 {
			t.Fatalf("%d requests failed in transport", failures.Load())
		}
		// Every answer is the same invalid_code (SECURITY.md A7); each
		// compare leaves a distinct count, so 2 and 1 appear at most once.
		if statuses[http.StatusUnauthorized] != n || left[2] > 1 || left[1] > 1 {
			t.Fatalf("answers: statuses %v, attempts_left %v; want %d times 401, attempts_left 2 and 1 at most once", statuses, left, n)
		}

		// One lockout for both nodes. An attempt counts in it only while
		// the challenge is live (a guess at a challenge that is over counts
		// nowhere, SECURITY.md L54), so the burst counts the three compares
		// and, depending on how the requests interleave, the attempts that
		// read the challenge before its last compare; "lockout 3" locks on
		// the fourth. Both nodes must tell the same count and the same lock.
		var reported []any
		for _, nd := range nodes {
			v := nd.adminGet(t, "/mfa/users/carol")
			fails, _ := v["failures"].(float64)
			locked := v["locked_until"] != nil
			if fails < 3 || locked != (fails >= 4) {
				t.Fatalf("node %s: carol after the wrong codes: failures %v, locked_until %v; want at least 3, and a lockout from 4", nd.name, v["failures"], v["locked_until"])
			}
			reported = append(reported, v["failures"], locked)
		}
		if reported[0] != reported[2] || reported[1] != reported[3] {
			t.Fatalf("the nodes disagree on carol's lockout: %v", reported)
		}
		if locked, _ := reported[1].(bool); !locked {
			// Only the three compares counted: one more wrong code, on a
			// new challenge asked on B and guessed on A, is the fourth
			// failure and locks her on both nodes.
			c2 := newClient(t).withBasicAuth("carol", alicePassword)
			seen := messagesTo(srv, to)
			if r := c2.on(b).postJSON("/.mfa/send", map[string]string{"method": "email"}); r.StatusCode != http.StatusOK {
				t.Fatalf("second send: status %d: %s", r.StatusCode, r.body)
			}
			if r := verify(t, c2.on(a), otherCode(codeTo(t, srv, to, seen))); r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("the fourth wrong code: status %d: %s", r.StatusCode, r.body)
			}
			for _, nd := range nodes {
				if v := nd.adminGet(t, "/mfa/users/carol"); v["failures"] != float64(4) || v["locked_until"] == nil {
					t.Fatalf("node %s: carol after the fourth wrong code: failures %v, locked_until %v; want 4 and a lockout", nd.name, v["failures"], v["locked_until"])
				}
			}
		}
		// The right code no longer signs her in, on either node.
		for _, nd := range nodes {
			if r := verify(t, c.on(nd), code); r.StatusCode != http.StatusUnauthorized {
				t.Fatalf("node %s: the right code after the lockout: status %d, want 401: %s", nd.name, r.StatusCode, r.body)
			}
			if _, ok := protected(t, c.on(nd), "/"); ok {
				t.Fatalf("node %s: the upstream was reached", nd.name)
			}
		}
	})

	t.Run("totp enrolled on one node, replay guard on both", func(t *testing.T) {
		c := newClient(t).withBasicAuth("bob", alicePassword)
		nodeSignIn(t, c.on(a), srv, "bob")
		page := enrollPage(t, c.on(a), "/.mfa/enroll/totp", nil).view(t, http.StatusOK)
		if page.Secret == "" {
			t.Fatalf("the enrollment page on A shows no secret: %+v", page)
		}
		t0 := time.Now()
		enrollCode := totpref.Code(page.Secret, t0, 0)
		r := c.on(a).postJSON("/.mfa/enroll/totp", map[string]string{"action": "confirm", "code": enrollCode, "return": "/", "csrf_token": page.CSRFToken})
		if v := r.view(t, http.StatusOK); v.Step != "recovery_codes" {
			t.Fatalf("confirming the app on A: step %q: %s", v.Step, r.body)
		}
		bobOn := func(nd *node) *client { return newClient(t).withBasicAuth("bob", alicePassword).on(nd) }
		refusedOn := func(nd *node, what, code string) {
			t.Helper()
			fresh := bobOn(nd)
			r := verifyWith(t, fresh, "totp", code)
			if v := r.view(t, http.StatusUnauthorized); v.Error != "invalid_code" {
				t.Fatalf("node %s: %s: error %q, want invalid_code: %s", nd.name, what, v.Error, r.body)
			}
			if _, ok := protected(t, fresh, "/"); ok {
				t.Fatalf("node %s: %s: the upstream was reached", nd.name, what)
			}
		}
		// The code that confirmed the app on A is spent on B too.
		refusedOn(b, "the code used on A", enrollCode)
		// The app enrolled on A signs bob in on B ...
		next := totpref.Code(page.Secret, t0, 1)
		onB := bobOn(b)
		if v := verifyWith(t, onB, "totp", next).view(t, http.StatusOK); v.Step != "done" {
			t.Fatalf("sign-in on B with the app enrolled on A: step %q", v.Step)
		}
		if h, ok := protected(t, onB, "/"); !ok || h.Get("X-Mfa-Method") != "totp" {
			t.Fatalf("after signing in on B with the app: upstream reached %v, X-Mfa-Method %q", ok, h.Get("X-Mfa-Method"))
		}
		// ... and the code B took is spent on A.
		refusedOn(a, "the code used on B", next)
	})

	t.Run("throttles add up", func(t *testing.T) {
		// per_user_per_hour 4: two sends on each node use dave's budget.
		for i := range 4 {
			nd := nodes[i%2]
			c := newClient(t).withBasicAuth("dave", alicePassword).on(nd)
			if r := c.postJSON("/.mfa/send", map[string]string{"method": "email"}); r.StatusCode != http.StatusOK {
				t.Fatalf("send %d on %s: status %d: %s", i+1, nd.name, r.StatusCode, r.body)
			}
		}
		for _, nd := range nodes {
			c := newClient(t).withBasicAuth("dave", alicePassword).on(nd)
			r := c.postJSON("/.mfa/send", map[string]string{"method": "email"})
			if r.StatusCode != http.StatusTooManyRequests || r.json(t)["error"] != "throttled" {
				t.Fatalf("fifth send on %s: status %d, want 429 throttled: %s", nd.name, r.StatusCode, r.body)
			}
			checkRetryAfter(t, r)
		}
	})
}

// TestTwoNodesRedisDown stops Redis under load on two nodes: once a node's
// cached session is older than the one-second bound, nothing gets through
// (503, never 200), a session the node has not cached is refused at once,
// the flow answers 503 with the JSON error "unavailable", and both nodes
// serve again by themselves once Redis is back (SECURITY.md A9).
func TestTwoNodesRedisDown(t *testing.T) {
	r := redistest.Start(t, "appendonly yes", "appendfsync always")
	srv := newSMTP(t)
	up := newUpstream(t)
	nodes := startNodes(t, 2, nodeSite{upstream: up, mfa: nodeMFA(srv, "storage redis redis://"+r.Addr)})
	a, b := nodes[0], nodes[1]

	alice := newClient(t).withBasicAuth("alice", alicePassword)
	nodeSignIn(t, alice.on(a), srv, "alice")
	// erin signs in on A only: B has never cached her session.
	erin := newClient(t).withBasicAuth("erin", alicePassword)
	nodeSignIn(t, erin.on(a), srv, "erin")

	// Load: alice's session on both nodes, back to back.
	type answer struct {
		start, end time.Time
		status     int
	}
	var (
		mu      sync.Mutex
		answers []answer
		stop    = make(chan struct{})
		wg      sync.WaitGroup
	)
	hc := &http.Client{Jar: alice.hc.Jar, Timeout: 10 * time.Second}
	for w := range 4 {
		nd := nodes[w%2]
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				req, _ := http.NewRequest(http.MethodGet, nd.url+"/load", nil)
				req.Header.Set("Accept", "application/json")
				req.SetBasicAuth("alice", alicePassword)
				status := 0
				if resp, err := hc.Do(req); err == nil {
					status = resp.StatusCode
					resp.Body.Close()
				}
				mu.Lock()
				answers = append(answers, answer{start, time.Now(), status})
				mu.Unlock()
			}
		})
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()

	time.Sleep(300 * time.Millisecond)
	r.Kill()
	down := time.Now()

	// A session B has not seen, and the flow, fail closed at once.
	if st := erin.on(b).get("/", "application/json"); st.StatusCode != http.StatusServiceUnavailable || st.json(t)["error"] != "unavailable" {
		t.Fatalf("erin's session on B with Redis down: status %d, want 503 unavailable: %s", st.StatusCode, st.body)
	}
	if st := erin.on(b).get("/", "text/html"); st.StatusCode != http.StatusServiceUnavailable || !bytes.Contains(st.body, []byte("unavailable")) {
		t.Fatalf("erin's session on B with Redis down, as a page: status %d, want 503: %s", st.StatusCode, st.body)
	}
	fresh := newClient(t).withBasicAuth("bob", alicePassword).on(a)
	if st := fresh.get("/.mfa/", "application/json"); st.StatusCode != http.StatusServiceUnavailable || st.json(t)["error"] != "unavailable" {
		t.Fatalf("the sign-in page with Redis down: status %d, want 503 unavailable: %s", st.StatusCode, st.body)
	}

	time.Sleep(2500 * time.Millisecond)
	restarting := time.Now()
	r.Restart()
	restarted := time.Now()

	// Both nodes serve alice again by themselves.
	for _, nd := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for {
			if st := alice.on(nd).get("/", "application/json"); st.StatusCode == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s does not serve alice 10 s after Redis came back", nd.name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("served again %v after Redis restarted", time.Since(restarted).Round(time.Millisecond))
	// erin's session, made before the outage, survived it (AOF).
	if _, ok := protected(t, erin.on(b), "/"); !ok {
		t.Fatal("erin's session did not survive the Redis restart")
	}

	stopLoad()
	counts := map[string]map[int]int{"before": {}, "within 1 s": {}, "down": {}, "restarting": {}, "after": {}}
	// The bound is one second after the last store read that can have
	// succeeded (Kill returns once Redis has exited); requests started
	// later than that and answered before Redis was started again must
	// all fail closed.
	bound := down.Add(time.Second + 50*time.Millisecond)
	for _, an := range answers {
		phase := "before"
		switch {
		case an.start.After(restarted):
			phase = "after"
		case an.end.After(restarting):
			phase = "restarting"
		case an.start.After(bound):
			phase = "down"
		case an.start.After(down):
			phase = "within 1 s"
		}
		counts[phase][an.status]++
	}
	t.Logf("answers by phase: %v", counts)
	for status, n := range counts["down"] {
		if status != http.StatusServiceUnavailable {
			t.Errorf("%d requests with Redis down answered %d, want only 503", n, status)
		}
	}
	if counts["down"][http.StatusServiceUnavailable] == 0 {
		t.Error("no request ran while Redis was down")
	}
	for phase, byStatus := range counts {
		for status, n := range byStatus {
			if status != http.StatusOK && status != http.StatusServiceUnavailable {
				t.Errorf("%s: %d requests answered %d", phase, n, status)
			}
		}
	}
}

// TestTwoNodesSentinelFailover enrolls an app on node A through a Redis
// master behind Sentinel (wait_replicas 1), kills the master, and once
// Sentinel has promoted the replica both nodes find the app: the failover
// lost no enrollment, and the nodes followed the new master by
// themselves.
func TestTwoNodesSentinelFailover(t *testing.T) {
	ctx := context.Background()
	master := redistest.Start(t, "appendonly yes")
	replica := redistest.Start(t, "appendonly yes", "replicaof 127.0.0.1 "+strconv.Itoa(master.Port))
	sentinel := redistest.StartSentinel(t,
		"sentinel monitor mymaster 127.0.0.1 "+strconv.Itoa(master.Port)+" 1",
		"sentinel down-after-milliseconds mymaster 1000",
		"sentinel failover-timeout mymaster 10000",
	)
	sc := goredis.NewSentinelClient(&goredis.Options{Addr: sentinel.Addr, DisableIdentity: true})
	t.Cleanup(func() { sc.Close() })
	// The sentinel must know the replica in sync before it can promote it.
	waitFor(t, 20*time.Second, "the sentinel to know the replica", func() bool {
		replicas, err := sc.Replicas(ctx, "mymaster").Result()
		if err != nil {
			return false
		}
		for _, r := range replicas {
			if r["port"] == strconv.Itoa(replica.Port) && r["master-link-status"] == "ok" && !strings.Contains(r["flags"], "down") {
				return true
			}
		}
		return false
	})

	srv := newSMTP(t)
	up := newUpstream(t)
	nodes := startNodes(t, 2, nodeSite{upstream: up, mfa: nodeMFA(srv, `storage redis {
			sentinel mymaster `+sentinel.Addr+`
			wait_replicas 1
		}`)})
	a, b := nodes[0], nodes[1]

	c := newClient(t).withBasicAuth("bob", alicePassword)
	nodeSignIn(t, c.on(a), srv, "bob")
	page := enrollPage(t, c.on(a), "/.mfa/enroll/totp", nil).view(t, http.StatusOK)
	t0 := time.Now()
	r := c.on(a).postJSON("/.mfa/enroll/totp", map[string]string{"action": "confirm", "code": totpref.Code(page.Secret, t0, 0), "return": "/", "csrf_token": page.CSRFToken})
	if v := r.view(t, http.StatusOK); v.Step != "recovery_codes" {
		t.Fatalf("confirming the app on A: step %q: %s", v.Step, r.body)
	}

	master.Kill()
	killed := time.Now()
	waitFor(t, 30*time.Second, "the sentinel to promote the replica", func() bool {
		addr, err := sc.GetMasterAddrByName(ctx, "mymaster").Result()
		return err == nil && addr[1] == strconv.Itoa(replica.Port)
	})
	t.Logf("replica promoted %v after the master was killed", time.Since(killed).Round(time.Millisecond))

	// Both nodes follow the new master by themselves; the app enrolled
	// before the failover is there.
	for _, nd := range nodes {
		var user map[string]any
		waitFor(t, 30*time.Second, "node "+nd.name+" to read from the new master", func() bool {
			resp, err := http.Get(nd.admin + "/mfa/users/bob")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&user) == nil
		})
		if user["totp"] == nil {
			t.Fatalf("node %s, after the failover: bob has no app: %v", nd.name, user)
		}
	}
	t.Logf("both nodes read from the new master %v after the master was killed", time.Since(killed).Round(time.Millisecond))
	// A sign-in writes durably, and with wait_replicas 1 that needs a
	// replica, which the failover used up: the sign-in fails closed
	// until one is back, rather than acknowledge a write a second
	// failover could lose.
	fresh := newClient(t).withBasicAuth("bob", alicePassword).on(b)
	r = verifyWith(t, fresh, "totp", totpref.Code(page.Secret, t0, 1))
	if r.StatusCode != http.StatusServiceUnavailable || r.json(t)["error"] != "unavailable" {
		t.Fatalf("node B, sign-in without a replica for wait_replicas 1: status %d, want 503 unavailable: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, fresh, "/"); ok {
		t.Fatal("node B let bob through")
	}
}
