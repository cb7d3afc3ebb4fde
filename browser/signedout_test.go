package browser

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddymfa/caddy-mfa/examples"
)

// TestSignedOutPage signs in to examples/branding, signs out from the
// signed-in page and checks the page the browser lands on: it names the
// site, says the browser is signed out, survives a reload (no form is
// posted again, no 405), and its "Sign in again" leads back through the
// sign-in to the page the sign-in was for.
func TestSignedOutPage(t *testing.T) {
	for _, tc := range viewports {
		t.Run(tc.name, func(t *testing.T) {
			testSignedOutPage(t, tc.width, tc.height)
		})
	}
}

func testSignedOutPage(t *testing.T, width, height int) {
	ctx, cancel := newBrowser(t, width, height)
	defer cancel()
	srv := startBranding(t)
	mailbox := filepath.Join(srv.Dir, "mailbox")
	shots := newShooter(t)

	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(int64(width), int64(height)),
		openAsAlice(srv.URL("/docs")),
		submit(sendButton),
		chromedp.WaitVisible(`#code`),
	)
	if err != nil {
		t.Fatalf("asking for a code: %v", err)
	}
	msg := examples.WaitOutbox(t, mailbox, 1)
	var location, title, heading, text, href string
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#code`, msg.Code),
		submit(`form[action="/.mfa/verify"] button`),
		chromedp.Navigate(srv.URL("/.mfa/?return=%2Fdocs")),
		chromedp.WaitVisible(`form[action="/.mfa/logout"] button`),
		submit(`form[action="/.mfa/logout"] button`),
		chromedp.WaitVisible(`#sign-in-again`),
		store(&location, chromedp.Location()),
		store(&title, chromedp.Title()),
		store(&heading, chromedp.Text("h1")),
		store(&text, chromedp.Text("main")),
		store(&href, chromedp.Evaluate[string](`document.getElementById("sign-in-again").getAttribute("href")`)),
		shots.shot("signed-out"),
	)
	if err != nil {
		t.Fatalf("signing out: %v", err)
	}
	if want := srv.URL("/.mfa/signed-out?return=%2Fdocs"); location != want {
		t.Errorf("after signing out the browser is at %q, want %q", location, want)
	}
	if title != "Signed out · Example Corp" || heading != "You are signed out" || !strings.Contains(text, "You signed out of Example Corp in this browser.") {
		t.Errorf("signed-out page: title %q, heading %q, text:\n%s", title, heading, text)
	}
	if href != "/docs" {
		t.Errorf("Sign in again leads to %q, want /docs", href)
	}

	// A reload shows the page again.
	err = chromedp.Do(ctx,
		chromedp.Reload(),
		chromedp.WaitVisible(`#sign-in-again`),
		store(&heading, chromedp.Text("h1")),
		store(&location, chromedp.Location()),
	)
	if err != nil || heading != "You are signed out" || !strings.HasSuffix(location, "/.mfa/signed-out?return=%2Fdocs") {
		t.Fatalf("reloading the signed-out page: %v, at %q, heading %q", err, location, heading)
	}

	// Sign in again: the site sends the browser to the sign-in, for /docs.
	err = chromedp.Do(ctx,
		follow(`#sign-in-again`),
		chromedp.WaitVisible(sendButton),
		store(&location, chromedp.Location()),
	)
	if err != nil {
		t.Fatalf("signing in again: %v", err)
	}
	if !strings.HasSuffix(location, "/.mfa/?return=%2Fdocs") {
		t.Errorf("Sign in again led to %q, want the sign-in for /docs", location)
	}
}

// startBranding starts examples/branding, its logo and stylesheet named
// from the example's folder (the server runs in a temporary directory).
func startBranding(t *testing.T) *examples.Server {
	t.Helper()
	here, err := filepath.Abs(filepath.Join("..", "examples", "branding"))
	if err != nil {
		t.Fatal(err)
	}
	return examples.Start(t, "branding", examples.Options{Rewrite: func(cfg map[string]any) {
		examples.Walk(cfg, func(h map[string]any) {
			if h["handler"] == "mfa" {
				for _, k := range []string{"logo", "css"} {
					h[k] = filepath.Join(here, h[k].(string))
				}
			}
		})
	}})
}
