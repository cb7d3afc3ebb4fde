package email

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
	"github.com/caddymfa/caddy-mfa/internal/smtptest"
)

var boundaryRe = regexp.MustCompile(`boundary=([0-9a-zA-Z]+)`)

// normalBoundary replaces the MIME boundary of a message with a fixed one.
func normalBoundary(b []byte) string {
	s := string(b)
	if m := boundaryRe.FindStringSubmatch(s); m != nil {
		s = strings.ReplaceAll(s, m[1], "BOUNDARY")
	}
	return s
}

// goMailBytes is what go-mail writes for the message m, with m's Date and
// Message-ID.
func goMailBytes(t testing.TB, c *Config, m *Message) []byte {
	t.Helper()
	domain := c.from.Address[strings.LastIndexByte(c.from.Address, '@')+1:]
	msg := goMailMsg(msgFields{from: c.from, to: m.To, subject: m.Subject, text: m.Text, html: m.HTML,
		date: m.vals.date, id: m.vals.id + "@" + domain})
	var b bytes.Buffer
	if _, err := msg.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func wireConfig(t testing.TB, from string) *Config {
	t.Helper()
	tp, err := loadTemplates(nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseFrom(from)
	if err != nil {
		t.Fatal(err)
	}
	return &Config{tmpl: tp, from: f}
}

// A prepared code message is byte for byte what go-mail writes for it
// (the MIME boundary aside), in languages whose subjects go-mail encodes,
// with long site names whose lines it breaks, and with codes of several
// lengths; WriteTo gives those bytes.
func TestWireSameAsGoMail(t *testing.T) {
	sites := []string{
		"app.example.com",
		"",
		strings.Repeat("very-long-subdomain-name.", 8) + "example.com",
		"Bücherei der Stadt Großenkneten – Ausleihe und Verwaltung für alle Zweigstellen",
		"موقع تسجيل الدخول الخاص بالمكتبة العامة للمدينة والمناطق المجاورة لها",
		"図書館の貸出システムと利用者アカウントの管理サイト（本館および分館）",
	}
	froms := []string{"noreply@example.com", `"Anmeldung – Bücherei" <noreply@bücherei.example>`,
		"Sign-in <" + strings.Repeat("x", 40) + "@" + strings.Repeat("mail.", 10) + "example.com>"}
	codes := []string{"123456", "00000000", "98765", "0123456789"}
	cat := i18n.Builtin()
	var langs []*i18n.Lang
	for _, tag := range []string{"en", "de", "ar", "ja"} {
		l := cat.Lookup(tag)
		if l == nil || l.Tag() != tag {
			t.Fatalf("language %s missing", tag)
		}
		langs = append(langs, l)
	}
	prepared := 0
	for _, from := range froms {
		c := wireConfig(t, from)
		for _, lang := range langs {
			for i, site := range sites {
				code := codes[i%len(codes)]
				for _, to := range []string{"john.doe@example.com", "a@b.co", strings.Repeat("l", 50) + "@" + "example.org"} {
					m, err := c.message(authenticators.Message{To: to, Code: code, Site: site, TTL: 10 * time.Minute}, to, Mask(to), lang)
					if err != nil {
						t.Fatal(err)
					}
					if m.wire == nil {
						t.Errorf("%s, %q, %s: not prepared", lang.Tag(), site, from)
						continue
					}
					prepared++
					var got bytes.Buffer
					if _, err := m.WriteTo(&got); err != nil {
						t.Fatal(err)
					}
					want := goMailBytes(t, c, m)
					if normalBoundary(got.Bytes()) != normalBoundary(want) {
						t.Fatalf("%s, %q, from %s, to %s: prepared bytes differ from go-mail's:\n%s\n---\n%s", lang.Tag(), site, from, to, got.Bytes(), want)
					}
					if !strings.Contains(got.String(), "Date: "+m.vals.date+"\r\n") || !strings.Contains(got.String(), "To: <"+to+">\r\n") {
						t.Fatalf("message lacks its Date or To:\n%s", got.Bytes())
					}
				}
			}
		}
	}
	t.Logf("%d prepared messages compared", prepared)
}

// Messages that cannot be put into the prepared slots are built by go-mail:
// a recipient go-mail folds onto a line of its own or quotes, a code that
// is not letters and digits.
func TestWireFallback(t *testing.T) {
	c := wireConfig(t, "noreply@example.com")
	lang := i18n.Builtin().English()
	for _, tc := range []struct{ to, code string }{
		{strings.Repeat("l", 60) + "@example.org", "123456"}, // over wireMaxTo
		{"a..b@example.org", "123456"},                       // net/mail quotes it
		{"jöhn@example.org", "123456"},                       // not ASCII
		{"john@example.org", "123-456"},
	} {
		m, err := c.message(authenticators.Message{To: tc.to, Code: tc.code, Site: "x.example", TTL: time.Minute}, tc.to, Mask(tc.to), lang)
		if err != nil {
			t.Fatal(err)
		}
		if m.wire != nil || m.msg == nil {
			t.Errorf("to %q, code %q: prepared, want go-mail", tc.to, tc.code)
		}
	}
}

// FuzzWire: for any subject, text and HTML with the placeholder in them,
// a prepared message either is refused or gives, for any values that
// fit, exactly what go-mail writes.
func FuzzWire(f *testing.F) {
	f.Add("Your code: {C}", "Code:\n\n    {C}\n", "<p>{C}</p>", "123456", "john@example.com", uint8(0))
	f.Add("Ihr Anmeldecode für Bücherei {C}", strings.Repeat("ä", 70)+"{C}"+strings.Repeat("x", 80), "<p style=\"x\">{C}</p>", "12345678", "a@b.c", uint8(3))
	f.Add("رمز الدخول {C} رمز", "{C}{C}", "{C}", "0", "x@y", uint8(77))
	f.Add("=?UTF-8?q?{C}?=", "= {C} =\r\n", "{C}"+strings.Repeat(" ", 80), "999999", strings.Repeat("z", 66)+"@x", uint8(200))
	f.Add("", "", "", "42", "q@r.s", uint8(9))
	f.Fuzz(func(t *testing.T, subject, text, html, code, to string, pad uint8) {
		const ph = "mfacodeplaceholder0123456789abcdef"
		subject = strings.ReplaceAll(oneLine(subject), "{C}", ph)
		text = strings.Repeat("y", int(pad)%80) + strings.ReplaceAll(text, "{C}", ph)
		html = strings.ReplaceAll(html, "{C}", ph)
		from, _ := parseFrom("Sign-in <noreply@example.com>")
		w := buildWire(msgFields{from: from, subject: subject, text: text, html: html}, ph, len(code))
		if w == nil {
			return
		}
		v := wireValues{code: code, to: to, date: time.Unix(int64(pad)*1e7, 0).Format(time.RFC1123Z), id: fmt.Sprintf("%032x", pad)}
		if !w.fits(&v) {
			return
		}
		got := w.appendTo(nil, &v)
		if len(got) != w.size(&v) {
			t.Fatalf("size %d, wrote %d", w.size(&v), len(got))
		}
		c := &Config{from: from}
		m := &Message{To: to, Subject: strings.ReplaceAll(subject, ph, code), Text: strings.ReplaceAll(text, ph, code),
			HTML: strings.ReplaceAll(html, ph, code), vals: v}
		want := goMailBytes(t, c, m)
		if normalBoundary(got) != normalBoundary(want) {
			t.Fatalf("prepared bytes differ from go-mail's:\n%q\n---\n%q", got, want)
		}
	})
}

// The smtp transport sends a prepared message exactly as WriteTo writes
// it.
func TestWireSentAsWritten(t *testing.T) {
	s := smtptest.NewServer(t, smtptest.Options{Username: "mailer", Password: "pw"})
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	tr := &SMTP{Host: s.Host, Port: s.Port, CAFile: s.CAFile, Username: "mailer", Password: "pw"}
	if err := tr.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	c := wireConfig(t, testFrom)
	m, err := c.message(testMessage(), testTo, Mask(testTo), i18n.Builtin().Lookup("de"))
	if err != nil {
		t.Fatal(err)
	}
	if m.wire == nil {
		t.Fatal("test message not prepared")
	}
	if err := tr.Send(t.Context(), m); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if _, err := m.WriteTo(&want); err != nil {
		t.Fatal(err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || !bytes.Equal(msgs[0].Data, want.Bytes()) {
		t.Fatalf("server got %d messages; first:\n%s\nwant:\n%s", len(msgs), msgs[0].Data, want.Bytes())
	}
	if msgs[0].From != "noreply@example.com" || len(msgs[0].To) != 1 || msgs[0].To[0] != testTo {
		t.Errorf("envelope %s -> %v", msgs[0].From, msgs[0].To)
	}
}

// SECURITY.md 40: a recipient goes into a prepared message only as the
// plain address go-mail would write; anything that could end the To line
// or add a header is not one.
func TestWirePlainAddress(t *testing.T) {
	for _, to := range []string{"a@b.c\r\nBcc: x@y.z", "a@b.c\nBcc:x@y.z", "a b@c.d", "a@b.c,x@y.z", "<a@b.c>", "=?utf-8?q?a?=@b.c", "a\x00@b.c", ""} {
		if plainAddress(to) {
			t.Errorf("plainAddress(%q) = true", to)
		}
	}
	if !plainAddress("john.doe+tag@example.com") {
		t.Error("plain address refused")
	}
}
