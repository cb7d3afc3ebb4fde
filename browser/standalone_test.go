package browser

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddymfa/caddy-mfa/examples"
)

// TestStandaloneTypedAddress signs in to examples/standalone with a typo
// in the address: the code page shows the address typed, in full, with
// "Change"; Change opens the form filled in with it, the corrected
// address gets the code, and it signs in.
func TestStandaloneTypedAddress(t *testing.T) {
	for _, tc := range viewports {
		t.Run(tc.name, func(t *testing.T) {
			testStandaloneTypedAddress(t, tc.width, tc.height)
		})
	}
}

func testStandaloneTypedAddress(t *testing.T, width, height int) {
	ctx, cancel := newBrowser(t, width, height)
	defer cancel()
	srv := examples.Start(t, "standalone", examples.Options{})
	mailbox := filepath.Join(srv.Dir, "mailbox")
	shots := newShooter(t)

	var typed, text, value string
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(int64(width), int64(height)),
		chromedp.Navigate(srv.URL("/")),
		chromedp.WaitVisible(`#username`),
		chromedp.SendKeys(`#username`, "bob@exmaple.com"),
		submit(`form[action="/.mfa/identify"] button`),
		chromedp.WaitVisible(`p.typed a`),
		store(&typed, chromedp.Text(`p.typed`)),
		store(&text, chromedp.Text(`main`)),
		shots.shot("code-sent-typo"),
		follow(`p.typed a`),
		chromedp.WaitVisible(`#username`),
		store(&value, chromedp.Value(`#username`)),
		shots.shot("change"),
	)
	if err != nil {
		t.Fatalf("identifying with a typo: %v", err)
	}
	if strings.Join(strings.Fields(typed), " ") != "bob@exmaple.com · Change" {
		t.Errorf("the code page shows %q, want the address typed and Change", typed)
	}
	if !strings.Contains(text, "If bob@exmaple.com may sign in here, a code is on its way by email.") {
		t.Errorf("the code page says:\n%s", text)
	}
	if value != "bob@exmaple.com" {
		t.Errorf("Change: the form holds %q, want the address typed", value)
	}

	var body string
	err = chromedp.Do(ctx,
		chromedp.Clear(`#username`),
		chromedp.SendKeys(`#username`, "bob@example.com"),
		submit(`form[action="/.mfa/identify"] button`),
		chromedp.WaitVisible(`#code`),
		store(&typed, chromedp.Text(`p.typed`)),
		shots.shot("code-sent"),
	)
	if err != nil {
		t.Fatalf("identifying again: %v", err)
	}
	if !strings.HasPrefix(strings.TrimSpace(typed), "bob@example.com") {
		t.Errorf("after the change the page shows %q", typed)
	}
	msg := examples.WaitOutbox(t, mailbox, 1)
	if !strings.Contains(msg.To, "bob@example.com") {
		t.Fatalf("the code went to %q", msg.To)
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#code`, msg.Code),
		submit(`form[action="/.mfa/verify"] button`),
		store(&body, chromedp.Text("body")),
	)
	if err != nil {
		t.Fatalf("entering the code: %v", err)
	}
	if want := "Hello bob@example.com, you passed MFA (email)."; strings.TrimSpace(body) != want {
		t.Errorf("the site says %q, want %q", body, want)
	}
}
