package caddymfa

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/storage"
)

// countStore puts a countingStore under every service of the handler (the
// services, the delivery log), so a test sees every store call a request
// makes.
func (e *env) countStore() *countingStore {
	cs := newCountingStore(e.h.store)
	e.h.store = cs
	e.h.wire()
	e.h.dlog.store = cs
	return cs
}

// waitLogged waits until n delivery results have been recorded and
// written to the store.
func (e *env) waitLogged(n int) {
	e.t.Helper()
	l := e.h.dlog
	waitFor(e.t.(*testing.T), func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.queued >= uint64(n)
	})
	l.flush(e.t.Context())
}

// writeOps are the store calls that write (one write transaction each on
// Badger, one script on Redis).
var writeOps = []string{"put", "delete", "update", "incr", "update_many", "delete_prefix"}

// callBudget is what one sign-in of a kind may cost in store calls: all
// of them, and the writes among them. The numbers are what a sign-in
// costs today; a change that adds a call fails here and must say why.
type callBudget struct {
	calls, writes int
}

// storeCalls sums a countingStore's counts: every call, and the writes.
func storeCalls(ops map[string]int) (calls, writes int) {
	for op, n := range ops {
		calls += n
		if slices.Contains(writeOps, op) {
			writes += n
		}
	}
	return calls, writes
}

// checkBudget fails the test when a sign-in made more store calls than its
// budget, and logs what it made, call by call.
func checkBudget(t *testing.T, kind string, cs *countingStore, budget callBudget) {
	t.Helper()
	keys := cs.takeKeys()
	ops, _ := cs.take()
	calls, writes := storeCalls(ops)
	t.Logf("%s: %d store calls, %d writes: %v\n\t%s", kind, calls, writes, ops, strings.Join(keys, "\n\t"))
	if calls > budget.calls || writes > budget.writes {
		t.Errorf("%s: %d store calls (%d writes), budget %d (%d writes)", kind, calls, writes, budget.calls, budget.writes)
	}
}

// protected fetches a protected page with the browser's session and
// fails unless it reaches the upstream.
func (b *browser) protected() {
	b.e.t.Helper()
	resp := b.do(request{target: "/app", header: http.Header{"Accept": {"text/html"}}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.e.t.Fatalf("protected page after sign-in: status %d", resp.StatusCode)
	}
}

// step posts fields to a flow endpoint with the CSRF token of the
// previous answer, as the load tool does (no page fetched in between),
// and returns the status and the answer.
func (b *browser) step(path, csrf string, fields map[string]string) (int, map[string]any) {
	b.e.t.Helper()
	fields["csrf_token"] = csrf
	resp := b.do(request{method: http.MethodPost, target: "/.mfa" + path, json: fields})
	return resp.StatusCode, decodeJSON(b.e.t, resp)
}

// signInSteps runs one complete sign-in the way bench/signin does: the
// flow page, then first (identify or send), then verify with the code
// code returns, then the protected page.
func (e *env) signInSteps(b *browser, first string, firstFields map[string]string, code func() (method, code string)) {
	e.t.Helper()
	csrf, _ := b.state()["csrf_token"].(string)
	st, ans := b.step(first, csrf, firstFields)
	if st != http.StatusOK {
		e.t.Fatalf("%s: status %d %v", first, st, ans)
	}
	method, c := code()
	st, ans = b.step("/verify", ans["csrf_token"].(string), map[string]string{"method": method, "code": c})
	if st != http.StatusOK {
		e.t.Fatalf("verify: status %d %v", st, ans)
	}
	b.protected()
}

// The store calls of one complete sign-in of each kind, through every
// service, the delivery log included, as bench/signin makes them: a
// standalone email sign-in (the page, identify, which sends the code,
// verify, the protected page), a second-factor email sign-in (the page,
// send, verify, the protected page) and a standalone TOTP sign-in (the
// page, identify, verify, the protected page). The third sign-in of each
// kind is counted, so one-time records (the secret key, the first index
// entry) are not.
func TestSignInStoreCallBudget(t *testing.T) {
	emailCode := func(e *env, sent int) func() (string, string) {
		return func() (string, string) {
			e.h.pending.Wait()
			waitFor(t, func() bool { return len(e.outboxFiles()) >= sent })
			code := e.lastCode()
			// The delivery's log entry is part of the sign-in.
			e.waitLogged(sent)
			return methodEmail, code
		}
	}
	t.Run("standalone email", func(t *testing.T) {
		e := standaloneEnv(t, nil)
		cs := e.countStore()
		for i := range 3 {
			cs.take()
			cs.takeKeys()
			b := e.browser("")
			b.ip = "203.0.113.5"
			e.signInSteps(b, "/identify", map[string]string{"username": "alice"}, emailCode(e, i+1))
			e.clock.add(time.Minute)
		}
		checkBudget(t, "standalone email sign-in", cs, budgetStandaloneEmail)
	})
	t.Run("second factor email", func(t *testing.T) {
		h, outbox := testConfig(t)
		e := newEnv(t, h, outbox)
		cs := e.countStore()
		for i := range 3 {
			cs.take()
			cs.takeKeys()
			e.signInSteps(e.browser("alice"), "/send", map[string]string{"method": methodEmail}, emailCode(e, i+1))
			e.clock.add(time.Minute)
		}
		checkBudget(t, "second-factor email sign-in", cs, budgetSecondFactor)
	})
	t.Run("standalone totp", func(t *testing.T) {
		h, outbox := testConfig(t)
		h.User = new(string)
		h.TOTP = &totp.Config{Issuer: "Example"}
		e := newEnv(t, h, outbox)
		secret := e.enrollStandaloneApp("alice")
		cs := e.countStore()
		for range 3 {
			e.clock.add(30 * time.Second) // a new time step, past the replay guard
			cs.take()
			cs.takeKeys()
			b := e.browser("")
			b.ip = "203.0.113.5"
			e.signInSteps(b, "/identify", map[string]string{"username": "alice"}, func() (string, string) {
				return methodTOTP, e.code(secret, 0)
			})
		}
		checkBudget(t, "standalone totp sign-in", cs, budgetTOTP)
	})
}

// enrollStandaloneApp gives user an authenticator app through the users
// service, as the admin API's enroll does, and returns its secret.
func (e *env) enrollStandaloneApp(user string) string {
	e.t.Helper()
	secret, err := totp.NewSecret()
	if err != nil {
		e.t.Fatal(err)
	}
	sealed, err := totp.Seal(e.h.keys.totp, secret)
	if err != nil {
		e.t.Fatal(err)
	}
	err = e.h.users.update(e.t.Context(), user, func(rec *userRecord) (storage.Op, error) {
		rec.TOTP = &totpFactor{Secret: sealed, LastStep: totp.NoStep, Added: e.h.now()}
		return storage.WriteDurable, nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// The budgets of TestSignInStoreCallBudget. Before the lockout, the
// challenge, the session and its index shared store operations, and
// before the answers used the challenge they had just written, the three
// sign-ins took 12 calls (9 writes), 14 (9) and 9 (7); before the check
// of the code also wrote the session, 5 (5), 7 (6) and 2 (2); before the
// delivery log wrote its sequence with its entries, 4 (4), 6 (5) and 1 (1).
//
//   - standalone email: the challenge written (identify); the delivery
//     log's sequence and entry in one operation (shared with the
//     deliveries of the same few milliseconds); the lockout records, the
//     challenge, the user's record, the session and the user's index of
//     sessions in one operation (verify). The protected page finds the
//     session in memory.
//   - second-factor email: the same, and the send reads the flow's
//     challenge first (one that is over starts a fresh flow) and records
//     the live code for a sign-in again (SECURITY.md L58).
//   - standalone TOTP: the lockout records, the user's record, the
//     session and its index in one durable operation.
var (
	budgetStandaloneEmail = callBudget{calls: 3, writes: 3}
	budgetSecondFactor    = callBudget{calls: 5, writes: 4}
	budgetTOTP            = callBudget{calls: 1, writes: 1}
)
