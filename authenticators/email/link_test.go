package email

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators"
)

const testLink = "https://app.example.com/.mfa/link?token=Zm9vYmFyYmF6cXV4MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6"

func linkMessage() authenticators.Message {
	m := testMessage()
	m.Code, m.Link, m.TTL = "", testLink, 0
	return m
}

// TestLinkMessage renders a link message with the built-in templates: the
// link is in both parts, the subject says link, there is no code, and the
// lifetime is link_ttl.
func TestLinkMessage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	raw, _ := json.Marshal(map[string]any{"transport": "outbox", "dir": dir})
	c := &Config{TransportRaw: raw, Send: SendLink}
	provision(t, c)
	if time.Duration(c.LinkTTL) != DefaultLinkTTL {
		t.Errorf("LinkTTL = %v, want %v", time.Duration(c.LinkTTL), DefaultLinkTTL)
	}
	if err := c.Deliver(t.Context(), linkMessage()); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("outbox: %v, %d entries", err, len(entries))
	}
	b, err := os.ReadFile(filepath.Join(dir, entries[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	p := parseMail(t, b)
	if got := p.header.Get("Subject"); got != "Your sign-in link for app.example.com" {
		t.Errorf("Subject = %q", got)
	}
	if !slices.Contains(strings.Split(strings.ReplaceAll(p.text, "\r\n", "\n"), "\n"), "    "+testLink) {
		t.Errorf("text part lacks the link on a line of its own:\n%s", p.text)
	}
	if !strings.Contains(p.html, `href="`+testLink+`"`) {
		t.Errorf("html part lacks the link:\n%s", p.html)
	}
	if !strings.Contains(p.text, "expires in 10 minutes") {
		t.Errorf("text part lacks the link lifetime:\n%s", p.text)
	}
	if strings.Contains(p.text, "code") {
		t.Errorf("a link message talks of a code:\n%s", p.text)
	}
}

// TestLinkTemplates: in link mode the configured bodies must show .Link,
// and a template that uses the link only in link messages still checks.
func TestLinkTemplates(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	both := write("both.txt", "{{if .Link}}Open {{.Link}}{{else}}Code {{.Code}}{{end}}")
	codeOnly := write("code.txt", "Code {{.Code}}")
	badBranch := write("bad.txt", "{{if .Link}}{{.Link}}{{else}}{{.Nope}}{{end}}")
	outbox := json.RawMessage(`{"transport":"outbox","dir":"x"}`)
	tests := []struct {
		name string
		c    Config
		want string // "" for valid
	}{
		{"both modes", Config{TransportRaw: outbox, Send: SendLink, Templates: &Templates{TextFile: both, HTMLFile: both}}, ""},
		{"text without link", Config{TransportRaw: outbox, Send: SendLink, Templates: &Templates{TextFile: codeOnly}}, "text template does not show {{.Link}}"},
		{"html without link", Config{TransportRaw: outbox, Send: SendLink, Templates: &Templates{HTMLFile: codeOnly}}, "html template does not show {{.Link}}"},
		{"unknown field in the code branch", Config{TransportRaw: outbox, Send: SendLink, Templates: &Templates{TextFile: badBranch}}, "Nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// TestLinkMessageRefused: a link that is not an absolute http(s) URL of
// printable ASCII never goes out, and the error does not reveal it.
func TestLinkMessageRefused(t *testing.T) {
	raw, _ := json.Marshal(map[string]any{"transport": "outbox", "dir": t.TempDir()})
	c := &Config{TransportRaw: raw, Send: SendLink, LinkTTL: caddy.Duration(time.Hour)}
	rec := provision(t, c)
	for _, link := range []string{
		"javascript:alert(1)",
		"/.mfa/link?token=abc",
		"https://app.example.com/.mfa/link?token=abc\r\nBcc: x@example.com",
		"https://app.example.com/.mfa/link?token=a b",
		"https://user@app.example.com/.mfa/link?token=abc",
		"https://app.example.com/" + strings.Repeat("a", authenticators.MaxLinkLength),
	} {
		m := linkMessage()
		m.Link = link
		if err := c.Deliver(t.Context(), m); !errors.Is(err, authenticators.ErrDeliveryFailed) {
			t.Errorf("Deliver(link %q) = %v, want ErrDeliveryFailed", link, err)
		}
	}
	for _, r := range rec.get() {
		if strings.Contains(r.Error, "token=abc") {
			t.Errorf("delivery result reveals the token: %+v", r)
		}
	}
}
