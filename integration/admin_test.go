package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
	"github.com/caddymfa/caddy-mfa/internal/totpref"
)

// admin calls the admin API and decodes the JSON answer.
func admin(t *testing.T, method, path string, body string) (int, any) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, "http://"+adminAddr+path, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %s", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, v
}

// mfaCLI runs "caddy mfa <args>" in process against the test Caddy's
// admin endpoint and returns its output and error.
func mfaCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd, ok := caddycmd.Commands()["mfa"]
	if !ok {
		t.Fatal(`no "caddy mfa" command is registered`)
	}
	root := &cobra.Command{Use: "mfa", SilenceUsage: true, SilenceErrors: true}
	cmd.CobraFunc(root)
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append(args, "--address", adminAddr))
	err := root.Execute()
	return out.String(), err
}

// TestAdminAPIAndCommands operates a running Caddy through the admin API
// and the "caddy mfa" subcommands: users, lockout and unlock, revoke,
// reset of an authenticator app, a test email that arrives and one that
// fails, the delivery log.
func TestAdminAPIAndCommands(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, aliceSite(t, srv, up, aliceMFA{
		top:   "base_url http://localhost:9080\nlockout 3 15m",
		email: relaxedThrottle,
		after: "totp {\nissuer Example\n}",
	}))

	c := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, c, srv, 1)

	// sites and users
	status, v := admin(t, http.MethodGet, "/mfa/sites", "")
	if sites, _ := v.([]any); status != 200 || len(sites) != 1 || sites[0].(map[string]any)["site"] != "localhost:9080" {
		t.Fatalf("sites: %d %v", status, v)
	}
	out, err := mfaCLI(t, "users", "alice")
	if err != nil {
		t.Fatalf("caddy mfa users: %v: %s", err, out)
	}
	var user map[string]any
	if err := json.Unmarshal([]byte(out), &user); err != nil {
		t.Fatalf("users output: %v: %s", err, out)
	}
	if _, ok := user["throttles"].([]any); !ok {
		t.Errorf("users alice shows no throttles: %s", out)
	}
	if user["user"] != "alice" || user["email"] != "alice@example.com" || len(user["sessions"].([]any)) != 1 {
		t.Errorf("users alice: %s", out)
	}
	if strings.Contains(out, testSecret) || strings.Contains(strings.ToLower(out), "cookie") {
		t.Errorf("users output reveals a secret: %s", out)
	}

	// lockout, then unlock: 3 wrong codes use up one challenge; guesses at
	// a dead challenge count in no lockout, so the 4th goes to a new code.
	other := newClient(t).withBasicAuth("alice", alicePassword)
	sendCode(t, other, srv, 2)
	for range 3 {
		verify(t, other, "000000")
	}
	sendCode(t, other, srv, 3)
	verify(t, other, "000000")
	if _, ok := protected(t, c, "/x"); ok {
		t.Error("the lockout left alice's session alive")
	}
	_, v = admin(t, http.MethodGet, "/mfa/users/alice", "")
	if v.(map[string]any)["locked_until"] == nil {
		t.Fatalf("alice is not shown as locked: %v", v)
	}
	if out, err := mfaCLI(t, "unlock", "alice"); err != nil {
		t.Fatalf("caddy mfa unlock: %v: %s", err, out)
	}
	fresh := newClient(t).withBasicAuth("alice", alicePassword)
	code := sendCode(t, fresh, srv, 4)
	if r := verify(t, fresh, code); r.StatusCode != http.StatusOK {
		t.Fatalf("sign-in after unlock: %d %s", r.StatusCode, r.body)
	}

	// an authenticator app, then an administrator's reset
	page := fresh.get("/.mfa/enroll/totp", "application/json").json(t)
	secret, _ := page["secret"].(string)
	if secret == "" {
		t.Fatalf("enrollment page: %v", page)
	}
	r := fresh.postJSON("/.mfa/enroll/totp", map[string]string{"code": totpref.Code(secret, time.Now(), 0), "csrf_token": page["csrf_token"].(string)})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("enroll: %d %s", r.StatusCode, r.body)
	}
	if out, err := mfaCLI(t, "reset", "alice"); err != nil || !strings.Contains(out, `"removed": true`) {
		t.Fatalf("caddy mfa reset: %v: %s", err, out)
	}
	_, v = admin(t, http.MethodGet, "/mfa/users/alice", "")
	if v.(map[string]any)["totp"] != nil {
		t.Errorf("the app survived the reset: %v", v)
	}
	// Messages 5 and 6 are the notices of the app being added and
	// removed, queued in the background in either order.
	waitMessage(t, srv, 6)
	var subjects []string
	for _, m := range srv.Messages()[4:6] {
		subjects = append(subjects, parseMail(t, m).header.Get("Subject"))
	}
	if !strings.Contains(strings.Join(subjects, "\n"), "removed") {
		t.Errorf("no removal notice: %q", subjects)
	}

	// The reset is a factor change: it ended alice's sessions (E30).
	if _, ok := protected(t, fresh, "/x"); ok {
		t.Error("a session survived the administrator's reset")
	}

	// revoke
	again := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, again, srv, 7)
	if _, ok := protected(t, again, "/x"); !ok {
		t.Fatal("new session not valid before revoke")
	}
	if out, err := mfaCLI(t, "revoke", "alice"); err != nil || !strings.Contains(out, `"sessions_revoked": 1`) {
		t.Fatalf("caddy mfa revoke: %v: %s", err, out)
	}
	if _, ok := protected(t, again, "/x"); ok {
		t.Error("a revoked session still works")
	}

	// test email: delivered, then refused by the server
	if out, err := mfaCLI(t, "test-email", "ops@example.com"); err != nil || !strings.Contains(out, `"ok": true`) {
		t.Fatalf("caddy mfa test-email: %v: %s", err, out)
	}
	m := waitMessage(t, srv, 8)
	if !strings.HasPrefix(m.header.Get("Subject"), "Test message from localhost") {
		t.Errorf("test email subject %q", m.header.Get("Subject"))
	}
	srv.Reject(smtptest.StageRcpt, 550, -1)
	out, err = mfaCLI(t, "test-email", "ops@example.com")
	if err == nil || !strings.Contains(err.Error(), "550") {
		t.Fatalf("a refused test email: err %v, output %s; want an error with the server's 550", err, out)
	}

	// the delivery log, filtered
	out, err = mfaCLI(t, "log", "--failed", "--limit", "5")
	if err != nil {
		t.Fatalf("caddy mfa log: %v: %s", err, out)
	}
	var entries []map[string]any
	if err := json.Unmarshal([]byte(out), &entries); err != nil || len(entries) == 0 {
		t.Fatalf("log: %v: %s", err, out)
	}
	for _, e := range entries {
		if e["ok"] == true || e["user"] != "(test)" {
			t.Errorf("failed-only log holds %v", e)
		}
	}
	if strings.Contains(out, "ops@example.com") {
		t.Error("the log shows a full address")
	}

	// errors are reported and exit non-zero
	if _, err := mfaCLI(t, "users", "bad/name"); err == nil {
		t.Error("a bad user name did not fail")
	}
	if _, err := mfaCLI(t, "users", "alice", "--site", "nowhere.example"); err == nil {
		t.Error("an unknown site did not fail")
	}
}

// TestAdminEnrollsWhenEnrollOff: with enroll off users cannot add an app
// themselves; "caddy mfa enroll" sets one up and prints it once, and the
// user signs in with it.
func TestAdminEnrollsWhenEnrollOff(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, aliceSite(t, srv, up, aliceMFA{
		top:   "base_url http://localhost:9080",
		after: "totp {\nissuer Example\nenroll off\n}",
	}))

	c := newClient(t).withBasicAuth("alice", alicePassword)
	signIn(t, c, srv, 1)
	if r := c.get("/.mfa/enroll/totp", "application/json"); r.StatusCode != http.StatusForbidden {
		t.Fatalf("self-service enrollment with enroll off: %d %s", r.StatusCode, r.body)
	}
	out, err := mfaCLI(t, "enroll", "alice")
	if err != nil {
		t.Fatalf("caddy mfa enroll: %v: %s", err, out)
	}
	var got struct {
		Secret        string   `json:"secret"`
		URI           string   `json:"otpauth_uri"`
		QR            string   `json:"qr_png"`
		RecoveryCodes []string `json:"recovery_codes"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Secret == "" || !strings.HasPrefix(got.URI, "otpauth://totp/Example:alice?") ||
		!strings.HasPrefix(got.QR, "data:image/png;base64,") || len(got.RecoveryCodes) != 10 {
		t.Fatalf("enroll output: %v: %s", err, out)
	}
	// The change ended alice's session; the app signs her in.
	if _, ok := protected(t, c, "/x"); ok {
		t.Error("a session survived the enrollment")
	}
	fresh := newClient(t).withBasicAuth("alice", alicePassword)
	r := fresh.postJSON("/.mfa/verify", map[string]string{"method": "totp", "code": totpref.Code(got.Secret, time.Now(), 0)})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("sign-in with the enrolled app: %d %s", r.StatusCode, r.body)
	}
	if h, ok := protected(t, fresh, "/x"); !ok || h.Get("X-Mfa-Method") != "totp" {
		t.Errorf("protected page after the app: %v %v", ok, h)
	}
}

// TestAdminInputsRefusedNotWidened (SECURITY.md N64): a delivery-log
// filter that does not parse is refused with 400, by the API and by
// "caddy mfa log", instead of being dropped, which would answer with
// everyone's entries.
func TestAdminInputsRefusedNotWidened(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, aliceSite(t, srv, up, aliceMFA{email: relaxedThrottle}))
	signIn(t, newClient(t).withBasicAuth("alice", alicePassword), srv, 1)
	if status, v := admin(t, http.MethodGet, "/mfa/log", ""); status != 200 || len(v.([]any)) == 0 {
		t.Fatalf("the log is empty after a sign-in: %d %v", status, v)
	}
	for _, q := range []string{"user=a%2Fb", "user=", "user=%00", "method=carrier-pigeon", "failed=maybe", "limit=0", "limit=x"} {
		if status, v := admin(t, http.MethodGet, "/mfa/log?"+q, ""); status != http.StatusBadRequest {
			t.Errorf("GET /mfa/log?%s: %d %v, want 400", q, status, v)
		}
	}
	if status, v := admin(t, http.MethodGet, "/mfa/log?user=alice&method=email&failed=false", ""); status != 200 || len(v.([]any)) == 0 {
		t.Errorf("valid filters: %d %v", status, v)
	}
	if out, err := mfaCLI(t, "log", "--user", "a/b"); err == nil || strings.Contains(out, "alice") {
		t.Errorf("caddy mfa log --user a/b: %v: %s", err, out)
	}
}
