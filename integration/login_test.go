package integration

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestLoginOverSTARTTLSWithAuth signs alice in after basic_auth through
// the HTML forms, with the code mailed over STARTTLS and SMTP AUTH.
func TestLoginOverSTARTTLSWithAuth(t *testing.T) {
	testLogin(t, "starttls", false)
}

// TestLoginOverImplicitTLS signs alice in after basic_auth through the
// JSON API, with the code mailed over implicit TLS and SMTP AUTH.
func TestLoginOverImplicitTLS(t *testing.T) {
	testLogin(t, "implicit", true)
}

func testLogin(t *testing.T, tlsMode string, useJSON bool) {
	srv := newSMTP(t)
	up := newUpstream(t)
	startCaddy(t, site{
		basicAuth: bcryptHash(t, alicePassword),
		upstream:  up.addr(),
		mfa: `		storage badger ` + t.TempDir() + `
		secret_key ` + testSecret + `
		users {
			alice email alice@example.com
		}
		email {
			` + smtpBlock(srv, tlsMode) + `
			from "Example <noreply@example.com>"
		}`,
	}.caddyfile())

	c := newClient(t).withBasicAuth("alice", alicePassword)
	const target = "/private/page?x=1&y=%C3%A9"

	// A browser navigation without a session is sent to the sign-in page.
	r := c.get(target, "text/html")
	if r.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: status %d, want 302: %s", target, r.StatusCode, r.body)
	}
	loc := r.Header.Get("Location")
	if want := "/.mfa/?return=" + url.QueryEscape(target); loc != want {
		t.Fatalf("Location %q, want %q", loc, want)
	}
	if up.count() != 0 {
		t.Fatal("the upstream was reached without a session")
	}

	// The sign-in page offers the choice of methods.
	r = c.get(loc, "text/html")
	if r.StatusCode != http.StatusOK || !strings.Contains(r.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET %s: status %d, %s", loc, r.StatusCode, r.Header.Get("Content-Type"))
	}
	var code string
	if useJSON {
		st := c.state()
		if st["step"] != "choose" {
			t.Fatalf("step %v, want choose: %v", st["step"], st)
		}
		if st["destination"] != "a***@e***.com" {
			t.Errorf("destination %v, want the masked address a***@e***.com", st["destination"])
		}
		r = c.postJSON("/.mfa/send", map[string]string{"method": "email"})
		if r.StatusCode != http.StatusOK {
			t.Fatalf("send: status %d: %s", r.StatusCode, r.body)
		}
		if st := r.json(t); st["step"] != "verify" || st["method"] != "email" {
			t.Fatalf("send answered %v, want the verify step", st)
		}
	} else {
		f := form(t, r.body, "/.mfa/send")
		r = c.postForm(f.action, f.values)
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/.mfa/" {
			t.Fatalf("send: status %d, Location %q: %s", r.StatusCode, r.Header.Get("Location"), r.body)
		}
	}

	// Exactly one message, to exactly one recipient, over TLS after AUTH.
	msgs := srv.WaitMessages(1, 0)
	if len(msgs) != 1 {
		t.Fatalf("the SMTP server received %d messages, want 1", len(msgs))
	}
	m := parseMail(t, msgs[0])
	if len(m.To) != 1 || m.To[0] != "alice@example.com" {
		t.Errorf("RCPT TO %q, want exactly alice@example.com", m.To)
	}
	if m.From != "noreply@example.com" {
		t.Errorf("MAIL FROM %q, want noreply@example.com", m.From)
	}
	if !m.TLS {
		t.Errorf("the message travelled without TLS (mode %s)", tlsMode)
	}
	if m.User != "mailer" || srv.Auths() < 1 {
		t.Errorf("no SMTP AUTH before the message: user %q, %d auths", m.User, srv.Auths())
	}
	if to, err := m.header.AddressList("To"); err != nil || len(to) != 1 || to[0].Address != "alice@example.com" {
		t.Errorf("To header %q (%v), want alice@example.com alone", m.header.Get("To"), err)
	}
	code = m.code(t)

	// The right code: a session and the way back to the page first asked for.
	if useJSON {
		r = verify(t, c, code)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("verify: status %d: %s", r.StatusCode, r.body)
		}
		if st := r.json(t); st["step"] != "done" || st["redirect"] != target {
			t.Fatalf("verify answered %v, want done with redirect %s", st, target)
		}
	} else {
		r = c.get("/.mfa/", "text/html")
		f := form(t, r.body, "/.mfa/verify")
		f.values.Set("code", code)
		r = c.postForm(f.action, f.values)
		if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != target {
			t.Fatalf("verify: status %d, Location %q, want 303 to %s: %s", r.StatusCode, r.Header.Get("Location"), target, r.body)
		}
	}

	r = c.get(target, "text/html")
	if r.StatusCode != http.StatusOK {
		t.Fatalf("GET %s after sign-in: status %d: %s", target, r.StatusCode, r.body)
	}
	got := up.last(t)
	if got.URL.RequestURI() != target {
		t.Errorf("upstream saw %s, want %s", got.URL.RequestURI(), target)
	}
	if v := got.Header.Get("X-Mfa-User"); v != "alice" {
		t.Errorf("upstream saw X-Mfa-User %q, want alice", v)
	}
	if v := got.Header.Get("X-Mfa-Method"); v != "email" {
		t.Errorf("upstream saw X-Mfa-Method %q, want email", v)
	}
	if len(c.hc.Jar.Cookies(mustURL(t, siteURL))) == 0 {
		t.Error("the browser holds no cookie after sign-in")
	}
	for _, ck := range got.Cookies() {
		if strings.HasPrefix(strings.TrimPrefix(ck.Name, "__Host-"), "mfa_") {
			t.Errorf("the upstream received the %s cookie", ck.Name)
		}
	}
	if up.count() != 1 {
		t.Errorf("the upstream received %d requests, want 1", up.count())
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
