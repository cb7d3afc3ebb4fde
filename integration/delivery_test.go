package integration

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// TestSMTPDownGivesClearErrorAndDeadChallenge (SECURITY.md I41): when the
// SMTP server refuses the message, is not there or never answers, POST
// /send answers 502 delivery_failed with a message for the user within the
// delivery wait, the failure is logged with the address masked, and the
// challenge is dead: no code, not even a guessed one, signs in.
func TestSMTPDownGivesClearErrorAndDeadChallenge(t *testing.T) {
	hash := bcryptHash(t, alicePassword)
	cases := []struct {
		name string
		smtp func(t *testing.T) (block string, srv *smtptest.Server)
	}{
		{"permanent_550", func(t *testing.T) (string, *smtptest.Server) {
			srv := newSMTP(t)
			srv.Reject(smtptest.StageRcpt, 550, -1)
			return smtpBlock(srv, "starttls"), srv
		}},
		{"connection_refused", func(t *testing.T) (string, *smtptest.Server) {
			return smtpTo(t, smtptest.ClosedAddr(t)), nil
		}},
		{"server_hangs", func(t *testing.T) (string, *smtptest.Server) {
			return smtpTo(t, smtptest.Hang(t)), nil
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			block, srv := tc.smtp(t)
			logFile := filepath.Join(t.TempDir(), "caddy.log")
			startCaddy(t, deliverySite(t, hash, logFile, block, "5s"))

			c := newClient(t).withBasicAuth("alice", alicePassword)
			start := time.Now()
			r := c.postJSON("/.mfa/send", map[string]string{"method": "email"})
			elapsed := time.Since(start)
			if r.StatusCode != http.StatusBadGateway {
				t.Fatalf("send: status %d after %s, want 502: %s", r.StatusCode, elapsed, r.body)
			}
			st := r.json(t)
			if st["error"] != "delivery_failed" {
				t.Errorf("error %v, want delivery_failed", st["error"])
			}
			if msg, _ := st["message"].(string); !strings.Contains(msg, "could not be delivered") {
				t.Errorf("message %q does not tell the user the code was not sent", msg)
			}
			if elapsed > 15*time.Second {
				t.Errorf("send took %s, want at most the delivery wait and a margin", elapsed)
			}

			// The page says so, and the challenge accepts no code.
			if st := c.state(); st["error"] != "delivery_failed" || st["step"] == "verify" {
				t.Errorf("the sign-in page shows %v, want the delivery failure and no verify step", st)
			}
			for _, code := range []string{"000000", "123456", "999999"} {
				if r := verify(t, c, code); r.StatusCode != http.StatusUnauthorized {
					t.Fatalf("verify %s on a failed challenge: status %d, want 401: %s", code, r.StatusCode, r.body)
				}
			}
			if _, ok := protected(t, c, "/"); ok {
				t.Error("the upstream was reached after a failed delivery")
			}
			if srv != nil {
				if n := len(srv.Messages()); n != 0 {
					t.Errorf("the SMTP server accepted %d messages, want 0", n)
				}
			}

			// The log records the failure with the address masked.
			logs, err := os.ReadFile(logFile)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(logs), `"email delivery failed"`) || !strings.Contains(string(logs), "a***@e***.com") {
				t.Errorf("the log has no delivery failure for a***@e***.com:\n%s", logs)
			}
			if strings.Contains(string(logs), "alice@example.com") {
				t.Error("the log holds the full address alice@example.com")
			}
			// A refusal is final at the first attempt: one line tells it.
			if tc.name == "permanent_550" {
				var failures []string
				for _, line := range strings.Split(string(logs), "\n") {
					if strings.Contains(line, "a***@e***.com") && (strings.Contains(line, `"level":"error"`) || strings.Contains(line, `"level":"warn"`)) {
						failures = append(failures, line)
					}
				}
				if len(failures) != 1 {
					t.Errorf("the failed delivery is logged %d times, want once:\n%s", len(failures), strings.Join(failures, "\n"))
				}
			}
		})
	}

	// The first attempt outlasts the delivery wait, so POST /send answers
	// "sent"; the last retry fails a few seconds later. From then on the
	// challenge must be dead and the page must say the code was not sent.
	t.Run("fails_after_the_wait", func(t *testing.T) {
		block := strings.Replace(smtpTo(t, smtptest.Hang(t)), "timeout 1s", "timeout 2s", 1)
		logFile := filepath.Join(t.TempDir(), "caddy.log")
		startCaddy(t, deliverySite(t, hash, logFile, block, "1s"))
		c := newClient(t).withBasicAuth("alice", alicePassword)
		r := c.postJSON("/.mfa/send", map[string]string{"method": "email"})
		if r.StatusCode != http.StatusOK {
			t.Fatalf("send: status %d, want 200 (still trying when the wait ends): %s", r.StatusCode, r.body)
		}
		// The attempts end at about 2s and 4.2s; wait for the final failure
		// in the log, then give the handler a second to record it.
		waitFor(t, 15*time.Second, "the final delivery failure in the log", func() bool {
			logs, _ := os.ReadFile(logFile)
			return strings.Contains(string(logs), `"email delivery failed"`)
		})
		var st map[string]any
		waitFor(t, time.Second, "the page to say the code was not sent (a delivery that failed after the wait must not leave its challenge pending)", func() bool {
			st = c.state()
			return st["error"] == "delivery_failed"
		})
		if r := verify(t, c, "000000"); r.StatusCode != http.StatusUnauthorized {
			t.Fatalf("verify on a failed challenge: status %d, want 401", r.StatusCode)
		}
	})
}

// waitFor polls cond until it holds, and fails the test when timeout
// passes first; what says what was awaited.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deliverySite is a second-factor site for alice with the given email
// transport block and delivery wait, logging to logFile in JSON.
func deliverySite(t *testing.T, hash, logFile, block, wait string) string {
	return site{
		global:    "log {\n\t\toutput file " + logFile + "\n\t\tformat json\n\t}",
		basicAuth: hash,
		upstream:  newUpstream(t).addr(),
		mfa: `		storage badger ` + t.TempDir() + `
		secret_key ` + testSecret + `
		users {
			alice email alice@example.com
		}
		email {
			` + block + `
			from "Example <noreply@example.com>"
			delivery {
				retries 1
				wait ` + wait + `
			}
		}`,
	}.caddyfile()
}

// smtpTo is an smtp transport block for a server at addr that is down,
// with a short timeout so a server that never answers fails fast.
func smtpTo(t *testing.T, addr string) string {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return `smtp ` + host + ` ` + port + ` {
				tls none
				timeout 1s
			}`
}
