package integration

import (
	"fmt"
	"mime"
	"net/http"
	"strings"
	"testing"

	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

// injectionSite is a standalone site answering on any Host, so the Host
// header (the site name in the subject when base_url is unset) is the
// client's to choose.
func injectionSite(dir string, srv *smtptest.Server, up *upstream, users string) string {
	return site{
		address:  "http://:9080",
		upstream: up.addr(),
		mfa: `		user ""
		storage badger ` + dir + `
		secret_key ` + testSecret + `
		users {
` + users + `
		}
		email {
			` + smtpBlock(srv, "starttls") + `
			from "Example <noreply@example.com>"
			` + relaxedThrottle + `
		}`,
	}.caddyfile()
}

// TestHeaderInjectionThroughUserData (SECURITY.md I40): CR, LF, Bcc: and
// encoded words in user names, addresses and the Host header cannot add a
// recipient or a header. Names and addresses with line breaks are refused
// at load; what loads is sent to exactly one recipient, with no header the
// message should not have.
func TestHeaderInjectionThroughUserData(t *testing.T) {
	srv := newSMTP(t)
	up := newUpstream(t)
	dir := t.TempDir()
	const goodUsers = `			alice email alice@example.com
			"bob Bcc: evil@evil.com" email bob@example.com
			mallory email m=0d=0aBcc=3a_evil=40evil.com@example.com`
	startCaddy(t, injectionSite(dir, srv, up, goodUsers))

	// Line breaks or a second address in configured user data: the load
	// fails and the running config stays.
	refused := map[string]string{
		"LF in a name":                 "\t\t\t\"carol\nBcc: evil@evil.com\" email carol@example.com",
		"CRLF in a name":               "\t\t\t\"carol\r\nBcc: evil@evil.com\" email carol@example.com",
		"CRLF Bcc in an address":       "\t\t\t\"carol\" email \"carol@example.com\r\nBcc: evil@evil.com\"",
		"LF Bcc in an address":         "\t\t\t\"carol\" email \"carol@example.com\nBcc: evil@evil.com\"",
		"two addresses":                "\t\t\tcarol email \"carol@example.com, evil@evil.com\"",
		"display name and Bcc":         "\t\t\tcarol email \"Carol <carol@example.com>\nBcc: evil@evil.com\"",
		"encoded CRLF before an addr":  "\t\t\tcarol email \"=?utf-8?q?=0d=0aBcc:_evil@evil.com?= <carol@example.com>\"",
		"address with a Bcc: suffix":   "\t\t\tcarol email \"carol@example.com Bcc: evil@evil.com\"",
		"percent-encoded CRLF address": "\t\t\tcarol email \"carol@example.com%0d%0aBcc:evil@evil.com\"",
		"encoded-word address":         "\t\t\tcarol email =?utf-8?q?c=0d=0aBcc=3a_evil=40evil.com?=@example.com",
	}
	for name, users := range refused {
		if err := loadCaddyfile(injectionSite(dir, srv, up, users)); err == nil {
			t.Errorf("%s: the config loaded:\n%s", name, users)
		} else {
			msg := err.Error()
			t.Logf("%s: refused: ...%s", name, msg[max(0, len(msg)-200):])
		}
	}
	if t.Failed() {
		// A bad config may be running now; restore the good one.
		if err := loadCaddyfile(injectionSite(dir, srv, up, goodUsers)); err != nil {
			t.Fatal(err)
		}
	}

	// What loads: each sign-in mails exactly one recipient, with no extra
	// header, whatever the Host header says.
	hosts := []string{
		"localhost:9080",
		"evil.example%0d%0aBcc:attacker%40evil.com",
		"evil.example%0D%0ABcc%3A%20attacker%40evil.com:9080",
		"=%3Futf-8%3Fq%3Fx=0d=0aBcc=3a_attacker=40evil.com%3F=",
	}
	users := []struct{ name, to string }{
		{"alice", "alice@example.com"},
		{"bob Bcc: evil@evil.com", "bob@example.com"},
		{"mallory", "m=0d=0aBcc=3a_evil=40evil.com@example.com"},
	}
	n := 0
	for _, host := range hosts {
		for _, u := range users {
			c := newClient(t)
			c.header.Set("X-Forwarded-Host", "evil.com%0d%0aBcc: x@evil.com")
			st := c.state()
			r := c.postWithHost("/.mfa/identify", host, fmt.Sprintf(`{"username":%q,"csrf_token":%q}`, u.name, st["csrf_token"]))
			if r.StatusCode != http.StatusOK {
				t.Fatalf("identify %q with Host %q: status %d: %s", u.name, host, r.StatusCode, r.body)
			}
			n++
			m := waitMessage(t, srv, n)
			checkOneRecipient(t, m, u.to)
			// A plain host name reaches the subject; anything else a
			// client puts in Host is replaced, so a stranger cannot choose
			// the words of a code email sent to someone else.
			subject, _ := new(mime.WordDecoder).DecodeHeader(m.header.Get("Subject"))
			want := "this site"
			if host == "localhost:9080" {
				want = "localhost"
			}
			if !strings.HasSuffix(subject, " "+want) || strings.ContainsAny(subject, "\r\n%=") {
				t.Errorf("subject %q, want it to name %q", subject, want)
			}
		}
	}
	if got := len(srv.Messages()); got != n {
		t.Errorf("the SMTP server received %d messages, want %d", got, n)
	}
}

// allowedHeaders are the headers a code message may carry.
var allowedHeaders = map[string]bool{
	"From": true, "To": true, "Subject": true, "Date": true, "Message-Id": true,
	"Mime-Version": true, "Content-Type": true, "Content-Transfer-Encoding": true,
	"Auto-Submitted": true, "X-Auto-Response-Suppress": true,
}

// checkOneRecipient checks the envelope and the headers of m name exactly
// one recipient, to, and no header beyond the expected ones.
func checkOneRecipient(t *testing.T, m mailMessage, to string) {
	t.Helper()
	if len(m.To) != 1 || m.To[0] != to {
		t.Errorf("RCPT TO %q, want exactly %q", m.To, to)
	}
	for k := range m.header {
		if !allowedHeaders[k] {
			t.Errorf("unexpected header %s: %q", k, m.header[k])
		}
	}
	if vs := m.header["To"]; len(vs) != 1 {
		t.Errorf("%d To headers, want 1", len(vs))
	} else if list, err := m.header.AddressList("To"); err != nil || len(list) != 1 || list[0].Address != to {
		t.Errorf("To header %q parses to %v (%v), want %q alone", vs[0], list, err, to)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(m.header.Get("Subject"))
	if err != nil {
		t.Errorf("decoding the subject %q: %v", m.header.Get("Subject"), err)
	}
	if strings.ContainsAny(subject, "\r\n") {
		t.Errorf("the decoded subject has a line break: %q", subject)
	}
	for line := range strings.SplitSeq(string(m.Data), "\n") {
		l := strings.ToLower(strings.TrimLeft(line, " \t"))
		if strings.HasPrefix(l, "bcc:") || strings.HasPrefix(l, "cc:") {
			t.Errorf("a line of the message starts a Bcc/Cc header: %q", line)
		}
	}
}

// postWithHost posts a JSON body with the Host header set to host. The
// client's jar would look up cookies for that host, so the cookies of the
// site are added by hand.
func (c *client) postWithHost(path, host, body string) *response {
	c.t.Helper()
	req := c.newRequest(http.MethodPost, path, strings.NewReader(body))
	req.Host = host
	for _, ck := range c.hc.Jar.Cookies(req.URL) {
		req.AddCookie(ck)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	return c.do(req)
}
