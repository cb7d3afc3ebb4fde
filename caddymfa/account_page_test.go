package caddymfa

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
)

// The account page speaks the language of the request: its headings,
// buttons and "last seen" times come from the catalog, not English.
func TestAccountPageGerman(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	e.signIn("alice")
	e.clock.add(20 * time.Minute)
	a := e.signIn("alice")

	resp := a.speaking("de")(request{target: "/.mfa/account"})
	page := body(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("account page: status %d\n%s", resp.StatusCode, page)
	}
	for _, want := range []string{`<html lang="de" dir="ltr">`, "<title>Ihr Konto</title>", "Angemeldet als <strong>alice</strong>.",
		"So melden Sie sich an", "Wo Sie angemeldet sind", "dieser Browser", "Ein unbekannter Browser", "zuletzt gesehen vor 20 Minuten", "angemeldet mit E-Mail", "Diese beenden", "Abmelden"} {
		if !strings.Contains(page, want) {
			t.Errorf("German account page lacks %q:\n%s", want, page)
		}
	}
	for _, english := range []string{"Your account", "Signed in as", "Where you are signed in", "last seen", "End this one", "Sign out", "signed in with", "minutes ago", "An unknown browser"} {
		if strings.Contains(page, english) {
			t.Errorf("German account page says %q in English:\n%s", english, page)
		}
	}

	if page := body(t, a.speaking("en")(request{target: "/.mfa/account"})); !strings.Contains(page, "Your account") || !strings.Contains(page, "last seen 20 minutes ago") {
		t.Errorf("English account page:\n%s", page)
	}
}

// The buttons that end or replace something are styled as destructive,
// and only they: a fresh account page with two sessions.
func TestAccountDestructiveButtons(t *testing.T) {
	h, outbox := testConfig(t)
	e := newEnv(t, h, outbox)
	e.signIn("alice")
	page := body(t, e.signIn("alice").do(request{target: "/.mfa/account"}))
	forms := strings.Split(page, "<form")[1:]
	seen := map[string]bool{}
	for _, f := range forms {
		f = f[:strings.Index(f, "</form>")]
		action := "logout"
		if i := strings.Index(f, `name="action" value="`); i >= 0 {
			action = f[i+len(`name="action" value="`):]
			action = action[:strings.IndexByte(action, '"')]
		}
		seen[action] = true
		danger := strings.Contains(f, `class="link danger"`) || strings.Contains(f, `class="alt danger"`) || strings.Contains(f, `class="danger"`)
		switch action {
		case "end_session", "end_others", "forget_device", "remove_passkey", "recovery_codes":
			if !danger {
				t.Errorf("%s is not styled as destructive:\n%s", action, f)
			}
		default:
			if danger {
				t.Errorf("%s is styled as destructive:\n%s", action, f)
			}
		}
	}
	if !seen["end_session"] || !seen["end_others"] || !seen["logout"] {
		t.Errorf("account page forms %v, want end_session, end_others and logout:\n%s", seen, page)
	}
}

// The account page offers to add a phone number to a user who has none
// on file, and to change the address the user has.
func TestAccountPageAddOrChange(t *testing.T) {
	h, outbox := testConfig(t)
	h.SMS = &sms.Config{ProviderRaw: []byte(`{"provider":"outbox","dir":` + quote(t.TempDir()) + `}`),
		Registration: &authenticators.Registration{Require: []string{"email"}, DuringLogin: true}}
	h.Email.Registration = &authenticators.Registration{Require: []string{"sms"}, DuringLogin: true}
	e := newEnv(t, h, outbox)
	page := body(t, e.signIn("alice").do(request{target: "/.mfa/account"}))
	for _, want := range []string{"Add a phone number", "Change your email address"} {
		if !strings.Contains(page, want) {
			t.Errorf("account page of alice (an address, no phone) lacks %q:\n%s", want, page)
		}
	}
	for _, wrong := range []string{"Change your phone number", "Add an email address"} {
		if strings.Contains(page, wrong) {
			t.Errorf("account page of alice says %q", wrong)
		}
	}
}
