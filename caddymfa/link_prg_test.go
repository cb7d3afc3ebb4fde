package caddymfa

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A refused link form ends in a 303 to GET /link, which says the link is
// not valid once; a reload shows the page that takes a link again and
// posts nothing. SECURITY.md K52: neither the redirect nor the notice
// cookie carries the token. The GETs consume nothing: the right link
// still signs in afterwards.
func TestLinkPostRedirectGet(t *testing.T) {
	e := linkEnv(t)
	b, token := e.sendLink("alice")
	// Another secret for the same challenge: a character inside it
	// changed (the last carries padding bits).
	i := len(token) - 5
	c := byte('A')
	if token[i] == 'A' {
		c = 'B'
	}
	wrong := token[:i] + string(c) + token[i+1:]
	post := func(fields url.Values) {
		t.Helper()
		resp := b.do(request{target: "/.mfa/link", form: fields, header: htmlAccept()})
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/.mfa/link" {
			t.Fatalf("POST /link: %d %q, want 303 /.mfa/link", resp.StatusCode, resp.Header.Get("Location"))
		}
		for _, c := range resp.Cookies() {
			if strings.Contains(c.Value, wrong) || strings.Contains(c.Value, token) {
				t.Errorf("cookie %s carries the token", c.Name)
			}
		}
	}
	show := func(status int, want, unwanted string) {
		t.Helper()
		resp := b.do(request{target: "/.mfa/link", header: htmlAccept()})
		page := readBody(t, resp)
		if resp.StatusCode != status || !strings.Contains(page, want) || unwanted != "" && strings.Contains(page, unwanted) {
			t.Errorf("GET /link: %d, want %d with %q without %q:\n%s", resp.StatusCode, status, want, unwanted, page)
		}
	}

	// A token that is no token at all.
	post(url.Values{"token": {"nonsense"}})
	show(http.StatusBadRequest, "This link is not valid", `id="link-open"`)
	show(http.StatusOK, `id="link-open"`, "This link is not valid")

	// A wrong token on the confirm page.
	resp := b.do(request{target: "/.mfa/link", form: url.Values{"token": {wrong}}, header: htmlAccept()})
	csrf := csrfOf(t, readBody(t, resp))
	post(url.Values{"token": {wrong}, "csrf_token": {csrf}})
	show(http.StatusUnauthorized, "This link is not valid", `id="link-open"`)
	show(http.StatusOK, `id="link-open"`, "This link is not valid")

	// An expired page token: refused, and nothing done.
	post(url.Values{"token": {token}, "csrf_token": {"expired"}})
	show(http.StatusForbidden, "This page has expired.", "")
	if b.signedIn() {
		t.Fatal("an expired page signed in")
	}

	// The right link still signs in.
	if resp, v := b.confirmLink(token); resp.StatusCode != http.StatusOK || !b.signedIn() {
		t.Fatalf("the right link after the refusals: %d %v", resp.StatusCode, v)
	}
}
