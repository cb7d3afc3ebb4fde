package browser

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddymfa/caddy-mfa/examples"
)

// TestWrongCodeReloadPostsNothing: a wrong code lands, through a 303, on
// the sign-in page, which says so with the attempts left; reloading it
// posts nothing (no resubmission, no attempt used): the error is gone and
// the attempts left are the same; the right code then signs in.
func TestWrongCodeReloadPostsNothing(t *testing.T) {
	ctx, cancel := newBrowser(t, 1280, 800)
	defer cancel()
	srv := examples.Start(t, "quickstart", examples.Options{})
	mailbox := filepath.Join(srv.Dir, "mailbox")

	err := chromedp.Do(ctx,
		openAsAlice(srv.URL("/")),
		submit(sendButton),
		chromedp.WaitVisible(`#code`),
	)
	if err != nil {
		t.Fatalf("asking for a code: %v", err)
	}
	msg := examples.WaitOutbox(t, mailbox, 1)
	wrong := "000000"
	if msg.Code == wrong {
		wrong = "111111"
	}

	var alert, attempts, location, invalid string
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#code`, wrong),
		submit(`form[action="/.mfa/verify"] button`),
		chromedp.WaitVisible(`p[role="alert"]`),
		store(&alert, chromedp.Text(`p[role="alert"]`)),
		store(&attempts, chromedp.Text(`#attempts`)),
		store(&location, chromedp.Location()),
		store(&invalid, chromedp.EvaluateAsDevTools[string](`document.querySelector("#code").getAttribute("aria-invalid") + " " + document.querySelector("#code").getAttribute("aria-describedby") + " " + document.activeElement.id`)),
	)
	if err != nil {
		t.Fatalf("entering a wrong code: %v", err)
	}
	if !strings.Contains(alert, "not valid") || attempts != "2 attempts left." {
		t.Errorf("after a wrong code: alert %q, attempts %q", alert, attempts)
	}
	if !strings.HasSuffix(location, "/.mfa/") {
		t.Errorf("after a wrong code the browser is at %q, want the sign-in page (a GET)", location)
	}
	if invalid != "true error attempts code" {
		t.Errorf("the code field: aria-invalid, aria-describedby, focus = %q", invalid)
	}

	var alerts int
	err = chromedp.Do(ctx,
		chromedp.Reload(),
		chromedp.WaitVisible(`#code`),
		store(&alerts, chromedp.EvaluateAsDevTools[int](`document.querySelectorAll('p[role="alert"]').length`)),
		store(&attempts, chromedp.Text(`#attempts`)),
		store(&location, chromedp.Location()),
	)
	if err != nil {
		t.Fatalf("reloading: %v", err)
	}
	if alerts != 0 || attempts != "2 attempts left." || !strings.HasSuffix(location, "/.mfa/") {
		t.Errorf("after a reload: %d alerts, attempts %q, at %q; want no alert and 2 attempts left (nothing posted)", alerts, attempts, location)
	}

	var body string
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#code`, msg.Code),
		submit(`form[action="/.mfa/verify"] button`),
		store(&body, chromedp.Text("body")),
	)
	if err != nil {
		t.Fatalf("entering the code: %v", err)
	}
	if want := "Hello alice, you passed MFA (email)."; strings.TrimSpace(body) != want {
		t.Fatalf("protected page says %q, want %q", body, want)
	}
}
