package browser

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"

	"github.com/caddymfa/caddy-mfa/examples"
)

// TestPasskeySignIn registers a passkey in Chromium with its DevTools
// virtual authenticator (CTAP2, internal transport, resident keys, user
// verification) on examples/passkeys, signs out, signs in with the name
// and the passkey as second factor, renames it and removes it.
func TestPasskeySignIn(t *testing.T) {
	ctx, srv, shots := passkeyBrowser(t)
	addPasskey(t, ctx, srv, shots)

	var body, text string
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL("/.mfa/")),
		signOut(),
		chromedp.SendKeys(`#username`, "alice"),
		submit(`form[action="/.mfa/identify"] button`),
		chromedp.WaitVisible(`[data-passkey-login]`),
		shots.shot("choose"),
		store(&text, chromedp.Text(`.choices`)),
		jsNavigation(`[data-passkey-login]`),
		store(&body, chromedp.Text("body")),
	)
	if err != nil {
		t.Fatalf("signing in with the passkey: %v (page: %s)", err, text)
	}
	if !strings.HasPrefix(strings.TrimSpace(text), "Use a passkey") {
		t.Errorf("the choose step offers %q, want the passkey first", text)
	}
	if want := "Hello alice, you passed MFA (passkey)."; strings.TrimSpace(body) != want {
		t.Fatalf("after the passkey the page says %q, want %q", body, want)
	}

	// Rename, then remove.
	var list string
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL("/.mfa/passkey/register")),
		chromedp.WaitVisible(`ul.passkeys`),
		chromedp.SendKeys(`form[action="/.mfa/passkey/rename"] input[name="name"]`, "Work laptop"),
		submit(`form[action="/.mfa/passkey/rename"] button`),
		chromedp.WaitVisible(`ul.passkeys`),
		store(&list, chromedp.Text(`ul.passkeys`)),
		shots.shot("renamed"),
	)
	if err != nil {
		t.Fatalf("renaming the passkey: %v", err)
	}
	if !strings.Contains(list, "Work laptop") || !strings.Contains(list, "last used") || strings.Contains(list, "last used never") {
		t.Fatalf("after renaming, the list says %q", list)
	}
	err = chromedp.Do(ctx,
		submit(`form[action="/.mfa/passkey/remove"] button`),
		store(&text, chromedp.Text("main")),
		shots.shot("removed"),
	)
	if err != nil {
		t.Fatalf("removing the passkey: %v", err)
	}
	if !strings.Contains(text, "You have no passkey yet.") {
		t.Fatalf("after removing, the page says %q", text)
	}
}

// TestPasskeyPasswordless signs in with "Sign in with a passkey" on the
// identify page of examples/passkeys: no name typed, the discoverable
// passkey names the user.
func TestPasskeyPasswordless(t *testing.T) {
	ctx, srv, shots := passkeyBrowser(t)
	addPasskey(t, ctx, srv, shots)

	var body, location string
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL("/.mfa/")),
		signOut(),
		chromedp.WaitVisible(`[data-passkey-login]`),
		shots.shot("identify"),
		jsNavigation(`[data-passkey-login]`),
		store(&location, chromedp.Location()),
		store(&body, chromedp.Text("body")),
	)
	if err != nil {
		t.Fatalf("passwordless sign-in: %v", err)
	}
	if want := "Hello alice, you passed MFA (passkey)."; strings.TrimSpace(body) != want {
		t.Fatalf("after the passkey the browser is at %s and says %q, want %q", location, body, want)
	}
}

// passkeyBrowser starts examples/passkeys with base_url on the port it
// listens on (the relying party's origin must be the page's), and a
// Chromium with a virtual authenticator.
func passkeyBrowser(t *testing.T) (context.Context, *examples.Server, *shooter) {
	t.Helper()
	ctx, cancel := newBrowser(t, 1280, 800)
	t.Cleanup(cancel)
	srv := examples.Start(t, "passkeys", examples.Options{Rewrite: func(cfg map[string]any) {
		port := ""
		examples.Walk(cfg, func(obj map[string]any) {
			if l, ok := obj["listen"].([]any); ok && len(l) > 0 {
				port = strings.TrimPrefix(l[0].(string), ":")
			}
		})
		examples.Walk(cfg, func(obj map[string]any) {
			if obj["handler"] == "mfa" {
				obj["base_url"] = "http://localhost:" + port
			}
		})
	}})
	if _, err := strconv.Atoi(strings.TrimPrefix(srv.URL(""), "http://localhost:")); err != nil {
		t.Fatal(err)
	}
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, webauthn.Enable, webauthn.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, webauthn.AddVirtualAuthenticator, webauthn.AddVirtualAuthenticatorParams{Options: &webauthn.VirtualAuthenticatorOptions{
			Protocol:                    webauthn.AuthenticatorProtocolCtap2,
			Ctap2version:                webauthn.Ctap2versionCtap21,
			Transport:                   webauthn.AuthenticatorTransportInternal,
			HasResidentKey:              true,
			HasUserVerification:         true,
			IsUserVerified:              true,
			AutomaticPresenceSimulation: true,
		}})
		return err
	}))
	if err != nil {
		t.Fatalf("adding the virtual authenticator: %v", err)
	}
	return ctx, srv, newShooter(t)
}

// addPasskey signs alice in with the emailed code and adds a passkey on
// the passkey page.
func addPasskey(t *testing.T, ctx context.Context, srv *examples.Server, shots *shooter) {
	t.Helper()
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL("/")),
		chromedp.WaitVisible(`#username`),
		chromedp.SendKeys(`#username`, "alice"),
		submit(`form[action="/.mfa/identify"] button`),
		submit(sendButton),
	)
	if err != nil {
		t.Fatalf("asking for a code: %v", err)
	}
	msg := examples.WaitOutbox(t, filepath.Join(srv.Dir, "mailbox"), 1)
	var list string
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#code`, msg.Code),
		submit(`form[action="/.mfa/verify"] button`),
		chromedp.Navigate(srv.URL("/.mfa/")),
		chromedp.WaitVisible(`a[href="/.mfa/passkey/register"]`),
		follow(`a[href="/.mfa/passkey/register"]`),
		chromedp.WaitVisible(`#passkey-name`),
		shots.shot("passkeys-empty"),
		chromedp.SendKeys(`#passkey-name`, "Laptop"),
		jsNavigation(`form[data-passkey-register] button`),
		chromedp.WaitVisible(`ul.passkeys`),
		store(&list, chromedp.Text(`ul.passkeys`)),
		shots.shot("passkey-added"),
	)
	if err != nil {
		t.Fatalf("adding a passkey: %v", err)
	}
	if !strings.Contains(list, "Laptop") || !strings.Contains(list, "last used never") {
		t.Fatalf("after adding, the list says %q", list)
	}
}

// jsNavigation clicks an element whose script ends in a navigation and
// waits for the new page; when none comes, it fails with what the page's
// passkey error says.
func jsNavigation(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		wait, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := submit(sel)(wait, t); err == nil {
			return nil
		}
		msg, _ := chromedp.Evaluate[string](`(document.querySelector("[data-passkey-error]") || {}).textContent || ""`)(ctx, t)
		return fmt.Errorf("clicking %s led nowhere; the page says %q", sel, msg)
	})
}
