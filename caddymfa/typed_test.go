package caddymfa

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

var csrfValues = regexp.MustCompile(`name="csrf_token" value="[^"]+"`)

// standaloneTyped is a standalone handler with an allow list, and frank,
// a user named by an address whose codes go to another one.
func standaloneTyped(t *testing.T) *env {
	h, outbox := testConfig(t)
	h.User = new(string)
	h.AllowEmails = []string{"*@example.net"}
	h.Users = append(h.Users, UserEntry{Name: "frank@example.com", Email: "frank.other@example.org"})
	return newEnv(t, h, outbox)
}

// identifyHTML names typed on the identify form of a new browser, as a
// browser does (303, then the page), and returns the browser and the page.
func identifyHTML(t *testing.T, e *env, typed string) (*browser, string) {
	t.Helper()
	b := e.browser("")
	csrf := b.state()["csrf_token"].(string)
	resp := b.do(request{target: "/.mfa/identify", form: url.Values{"username": {typed}, "csrf_token": {csrf}}, header: htmlAccept()})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("identify %s: status %d", typed, resp.StatusCode)
	}
	return b, stepPage(t, b)
}

// stepPage GETs the flow's current step as a page, checking it is not
// kept by any cache.
func stepPage(t *testing.T, b *browser) string {
	t.Helper()
	resp := b.do(request{target: "/.mfa/", header: htmlAccept()})
	if got := resp.Header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", got)
	}
	return readBody(t, resp)
}

// SECURITY.md H37: standalone pages show the address the browser typed,
// unmasked, with a "change" link; an allowed address, a user named by an
// address whose codes go elsewhere and an unknown address get the same
// page but for that address, which is never one from the store; a wrong
// code's page too. Another browser sees none of it, and no log line
// carries it.
func TestStandaloneShowsTypedAddress(t *testing.T) {
	e := standaloneTyped(t)
	core, logs := observer.New(zap.DebugLevel)
	e.h.logger = zap.New(core)
	e.h.wire()

	typed := map[string]string{"Erin@Example.net": "erin@example.net", "frank@example.com": "frank@example.com", "nobody@example.org": "nobody@example.org"}
	var pages, failed []string
	for in, addr := range typed {
		b, page := identifyHTML(t, e, in)
		for _, want := range []string{
			`<p class="typed"><strong>` + addr + `</strong> · <a href="/.mfa/?method=identify">Change</a></p>`,
			`If <strong>` + addr + `</strong> may sign in here, a code is on its way by email.`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("%s: the page lacks %q:\n%s", in, want, page)
			}
		}
		if strings.Contains(page, "on file") || strings.Contains(page, "frank.other") || strings.Contains(page, "***") {
			t.Errorf("%s: the page tells what is on file:\n%s", in, page)
		}
		pages = append(pages, strings.ReplaceAll(csrfValues.ReplaceAllString(page, "CSRF"), addr, "ADDR"))

		csrf := b.state()["csrf_token"].(string)
		resp := b.follow(b.do(request{target: "/.mfa/verify", form: url.Values{"code": {"000000"}, "csrf_token": {csrf}}, header: htmlAccept()}))
		page = readBody(t, resp)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(page, `<strong>`+addr+`</strong> · <a href="/.mfa/?method=identify">`) {
			t.Errorf("%s: wrong code: status %d, page:\n%s", in, resp.StatusCode, page)
		}
		failed = append(failed, strings.ReplaceAll(csrfValues.ReplaceAllString(page, "CSRF"), addr, "ADDR"))
	}
	for i := 1; i < len(pages); i++ {
		if pages[i] != pages[0] || failed[i] != failed[0] {
			t.Fatalf("the pages differ by more than the address typed:\n%s\n----\n%s", pages[0], pages[i])
		}
	}

	// Another browser: the identify step, empty.
	other := e.browser("")
	page := stepPage(t, other)
	st := other.state()
	for _, addr := range typed {
		if strings.Contains(page, addr) || strings.Contains(fmt.Sprint(st), addr) {
			t.Errorf("another browser sees %s: %v\n%s", addr, st, page)
		}
	}
	if logs.FilterMessage("sign-in failed").Len() != len(typed) {
		t.Errorf("%d audit lines of failed sign-ins, want %d", logs.FilterMessage("sign-in failed").Len(), len(typed))
	}
	for _, entry := range logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		for _, addr := range typed {
			if strings.Contains(line, addr) {
				t.Errorf("a log line carries the address typed: %s", line)
			}
		}
	}
}

// The "change" link shows the identify step again, filled in with what
// was typed; the new name replaces it. It exists only in standalone mode
// and never for a second-factor user.
func TestStandaloneChangeTypedAddress(t *testing.T) {
	e := standaloneTyped(t)
	b, _ := identifyHTML(t, e, "erin@example.nte")
	page := readBody(t, b.do(request{target: "/.mfa/?method=identify", header: htmlAccept()}))
	if !strings.Contains(page, `action="/.mfa/identify"`) || !strings.Contains(page, `value="erin@example.nte"`) {
		t.Fatalf("change: not the identify form filled in:\n%s", page)
	}
	resp := b.do(request{target: "/.mfa/identify", form: url.Values{"username": {"erin@example.net"}, "csrf_token": {csrfOf(t, page)}}, header: htmlAccept()})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("identify after change: %d", resp.StatusCode)
	}
	page = stepPage(t, b)
	if !strings.Contains(page, "<strong>erin@example.net</strong> · ") || strings.Contains(page, "example.nte") {
		t.Fatalf("after the change:\n%s", page)
	}
	if st := b.state(); st["destination"] != "erin@example.net" || st["step"] != stepVerify {
		t.Fatalf("after the change, JSON: %v", st)
	}

	// Second-factor mode: nothing typed, nothing to change.
	h, outbox := testConfig(t)
	s := newEnv(t, h, outbox).browser("alice")
	if st := decodeJSON(t, s.do(request{target: "/.mfa/?method=identify", header: jsonAccept})); st["step"] != stepChoose {
		t.Fatalf("second factor, ?method=identify: %v", st)
	}
	if page := stepPage(t, s); strings.Contains(page, "method=identify") || strings.Contains(page, `class="typed"`) {
		t.Fatalf("second-factor page offers a change:\n%s", page)
	}
}

// onFile is how each shipped language says "the address on file".
var onFile = map[string]string{"en": "on file", "de": "hinterlegte", "fr": "enregistrée", "es": "registrada", "pt-BR": "cadastrad", "sv": "registrerade", "ja": "登録済み", "ar": "المسجَّل"}

// Users admitted by allow_emails have no entry, so nothing is on file:
// their pages, in every shipped language, with codes and with links,
// never say "the address on file"; nor does the registration's notice
// line, which they see once signed in.
func TestAllowEmailsNotToldOnFile(t *testing.T) {
	for _, send := range []string{"code", "link"} {
		h, outbox := testConfig(t)
		h.User = new(string)
		h.AllowEmails = []string{"*@example.net"}
		h.Email.Send = send
		if send == "link" {
			h.BaseURL = "https://app.test"
		}
		e := newEnv(t, h, outbox)
		for lang, phrase := range onFile {
			b := e.browser("")
			hdr := htmlAccept()
			hdr.Set("Accept-Language", lang)
			csrf := b.state()["csrf_token"].(string)
			b.do(request{target: "/.mfa/identify", form: url.Values{"username": {"erin@example.net"}, "csrf_token": {csrf}}, header: hdr})
			page := readBody(t, b.do(request{target: "/.mfa/", header: hdr}))
			if !strings.Contains(page, "<strong>erin@example.net</strong>") || strings.Contains(page, phrase) {
				t.Errorf("%s, %s: the page for an allow_emails user:\n%s", send, lang, page)
			}
		}
	}
	for _, l := range i18n.Builtin().Languages() {
		for _, key := range []string{"register.info_phone", "register.info_email"} {
			if strings.Contains(l.T(key), onFile[l.Tag()]) {
				t.Errorf("%s %s says %q: %s", l.Tag(), key, onFile[l.Tag()], l.T(key))
			}
		}
	}
}
