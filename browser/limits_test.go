package browser

import (
	"context"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddymfa/caddy-mfa/examples"
)

// TestResendTooSoonShowsTheWait (SECURITY.md L58): "Send a new code"
// within the cooldown keeps the code form and says how long to wait, and
// the code already sent still signs in.
func TestResendTooSoonShowsTheWait(t *testing.T) {
	ctx, cancel := newBrowser(t, 1280, 800)
	defer cancel()
	srv := examples.Start(t, "quickstart", examples.Options{})
	mailbox := filepath.Join(srv.Dir, "mailbox")
	shots := newShooter(t)

	var alert, heading string
	err := chromedp.Do(ctx,
		openAsAlice(srv.URL("/")),
		submit(sendButton),
		chromedp.WaitVisible(`form[action="/.mfa/resend"] button`),
		submit(`form[action="/.mfa/resend"] button`),
		chromedp.WaitVisible(`p[role="alert"]`),
		store(&alert, chromedp.Text(`p[role="alert"]`)),
		store(&heading, chromedp.Text("h1")),
		shots.shot("resend-too-soon"),
	)
	if err != nil {
		t.Fatalf("asking for a new code too soon: %v", err)
	}
	if !regexp.MustCompile(`Try again in \d+ seconds?\.`).MatchString(alert) {
		t.Errorf("the page says %q, want how long to wait", alert)
	}
	if heading != "Enter your code" {
		t.Errorf("after a refused resend the page is %q, want the code form", heading)
	}
	msg := examples.WaitOutbox(t, mailbox, 1)
	var body string
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#code`, msg.Code),
		submit(`form[action="/.mfa/verify"] button`),
		store(&body, chromedp.Text("body")),
	)
	if err != nil {
		t.Fatalf("entering the code already sent: %v", err)
	}
	if want := "Hello alice, you passed MFA (email)."; body != want {
		t.Fatalf("protected page says %q, want %q", body, want)
	}
}

// TestThrottledPageShowsTheWait (SECURITY.md L58): a send refused by a
// cap, with no code of this sign-in to fall back on, answers a page that
// says how long to wait.
func TestThrottledPageShowsTheWait(t *testing.T) {
	ctx, cancel := newBrowser(t, 1280, 800)
	defer cancel()
	srv := examples.Start(t, "quickstart", examples.Options{Rewrite: func(cfg map[string]any) {
		examples.Walk(cfg, func(obj map[string]any) {
			if obj["handler"] == "mfa" {
				if e, ok := obj["email"].(map[string]any); ok {
					e["throttle"] = map[string]any{"per_ip_per_hour": 1, "cooldown": -1}
				}
			}
		})
	}})
	shots := newShooter(t)

	var alert string
	err := chromedp.Do(ctx,
		openAsAlice(srv.URL("/")),
		submit(sendButton),
		chromedp.WaitVisible(`#code`),
		// A new sign-in, as after clearing cookies: the first code is
		// not this flow's, and the per-address cap is used up.
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			_, err := chromedp.Call(ctx, network.ClearBrowserCookies, cdp.Empty{})
			return err
		}),
		chromedp.Navigate(srv.URL("/")),
		chromedp.WaitVisible(sendButton),
		submit(sendButton),
		chromedp.WaitVisible(`p[role="alert"]`),
		store(&alert, chromedp.Text(`p[role="alert"]`)),
		shots.shot("throttled"),
	)
	if err != nil {
		t.Fatalf("asking for codes past the cap: %v", err)
	}
	if !regexp.MustCompile(`Try again in \d+ (seconds?|minutes?)\.`).MatchString(alert) {
		t.Errorf("the throttled page says %q, want how long to wait", alert)
	}
}
