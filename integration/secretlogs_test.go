package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestNoSecretsInLogs: SECURITY.md K52. A real Caddy writes its access log
// (the site's log directive) and every other log line at debug level to
// files, with basic_auth in front of everything, the link page included,
// and a user whose name is her email address. A link sign-in is driven to
// the end, with the link also opened on a phone that has no credentials
// yet (basic_auth answers it). No log line carries the link token, the
// session cookie or the address: the token travels in the URL fragment
// and then in a POST body, and audit lines mask a user name that is an
// address. Links of earlier releases carried the token in the query, and
// basic_auth's 401 put it in the access log.
func TestNoSecretsInLogs(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	logs := t.TempDir()
	const user = "alice@example.com"
	startCaddy(t, globalOptions(`log {
		output file `+filepath.Join(logs, "caddy.log")+`
		level DEBUG
	}`)+siteURL+` {
	log {
		output file `+filepath.Join(logs, "access.log")+`
		# The access log's user_id is the first factor's user; where
		# names are addresses, keep them out as the README shows.
		format filter {
			user_id hash
		}
	}
	basic_auth {
		`+user+` `+bcryptHash(t, alicePassword)+`
	}
	mfa {
		base_url `+siteURL+`
		storage badger `+t.TempDir()+`
		secret_key `+testSecret+`
		users {
			`+user+` email `+user+`
		}
		email {
			`+smtpBlock(srv, "starttls")+`
			from "Example <noreply@example.com>"
			send link
		}
	}
	reverse_proxy `+up.addr()+`
}
`)
	browser := newClient(t).withBasicAuth(user, alicePassword)
	r := browser.postJSON("/.mfa/send", map[string]string{"method": "email"})
	if r.StatusCode != http.StatusOK {
		t.Fatalf("send: status %d: %s", r.StatusCode, r.body)
	}
	link := linkPattern.FindString(waitMessage(t, srv, 1).text)
	if link == "" {
		t.Fatal("no link in the message")
	}
	_, token, _ := strings.Cut(link, "#")

	// A phone without the credentials yet: basic_auth answers.
	if r := newClient(t).get(strings.TrimPrefix(link, siteURL), "text/html"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET the link without credentials: status %d", r.StatusCode)
	}
	// The browser that asked opens the link and confirms.
	r = openLink(t, browser, link)
	confirm := form(t, r.body, "/.mfa/link")
	r = browser.postForm(confirm.action, confirm.values)
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("confirm: status %d: %s", r.StatusCode, r.body)
	}
	if _, ok := protected(t, browser, "/page"); !ok {
		t.Fatal("not signed in after confirming the link")
	}
	var session string
	for _, c := range r.Cookies() {
		if strings.HasPrefix(c.Name, "mfa_session-") {
			session = c.Value
		}
	}
	if session == "" {
		t.Fatal("no session cookie")
	}

	// Logs are written asynchronously by nothing here, but give the
	// file writers a moment to flush after the last request.
	var access, all string
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, _ := os.ReadFile(filepath.Join(logs, "access.log"))
		c, _ := os.ReadFile(filepath.Join(logs, "caddy.log"))
		access, all = string(a), string(c)
		if strings.Count(access, "\n") >= 6 && strings.Contains(all, "sign-in succeeded") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(access, `"/.mfa/link"`) || !strings.Contains(access, `"status":401`) {
		t.Fatalf("the access log misses the link requests:\n%s", access)
	}
	if !strings.Contains(all, `"user":"a***@e***.com"`) {
		t.Errorf("no audit line with the masked user:\n%s", all)
	}
	for name, text := range map[string]string{"access log": access, "log": all} {
		for what, secret := range map[string]string{"link token": token, "session cookie": session, "address": user} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s carries the %s:\n%s", name, what, text)
			}
		}
	}
}
