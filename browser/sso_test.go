package browser

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/caddymfa/caddy-mfa/examples"
)

// TestSingleSignOnAcrossSubdomains drives examples/sso in Chromium
// (SECURITY.md K49): app.example.com and wiki.example.com, mapped to this
// machine, are two sites of the realm "example" with cookie_domain
// example.com. Alice signs in at the wiki, lands on the page she asked
// for, and is signed in at the app without a second sign-in; signing out
// at the app signs her out of the wiki too.
func TestSingleSignOnAcrossSubdomains(t *testing.T) {
	ctx, cancel := newBrowser(t, 1280, 800, chromedp.Flag("host-resolver-rules", "MAP *.example.com 127.0.0.1"))
	defer cancel()
	srv := examples.Start(t, "sso", examples.Options{})
	mailbox := filepath.Join(srv.Dir, "mailbox")
	shots := newShooter(t)
	port := strconv.Itoa(srv.Port)
	wiki, app := "http://wiki.example.com:"+port, "http://app.example.com:"+port

	var location, body string
	err := chromedp.Do(ctx,
		chromedp.Navigate(wiki+"/page"),
		chromedp.WaitVisible(`#username`),
		store(&location, chromedp.Location()),
		shots.shot("identify"),
		chromedp.SendKeys(`#username`, "alice"),
		submit(`form[action="/.mfa/identify"] button`),
		chromedp.WaitVisible(`#code`),
		shots.shot("code"),
	)
	if err != nil {
		t.Fatalf("opening the wiki: %v", err)
	}
	if !strings.HasPrefix(location, wiki+"/.mfa/?return=%2Fpage") {
		t.Fatalf("the wiki sent the browser to %q, want its sign-in page", location)
	}
	msg := examples.WaitOutbox(t, mailbox, 1)
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#code`, msg.Code),
		submit(`form[action="/.mfa/verify"] button`),
		store(&location, chromedp.Location()),
		store(&body, chromedp.Text("body")),
		shots.shot("wiki"),
	)
	if err != nil {
		t.Fatalf("entering the code: %v", err)
	}
	if location != wiki+"/page" || strings.TrimSpace(body) != "Wiki: hello alice." {
		t.Fatalf("after the code the browser is at %q, showing %q", location, body)
	}

	// The other site: no sign-in.
	err = chromedp.Do(ctx,
		chromedp.Navigate(app+"/"),
		store(&location, chromedp.Location()),
		store(&body, chromedp.Text("body")),
		shots.shot("app"),
	)
	if err != nil {
		t.Fatalf("opening the app: %v", err)
	}
	if location != app+"/" || strings.TrimSpace(body) != "App: hello alice." {
		t.Fatalf("the app, signed in at the wiki: at %q, showing %q", location, body)
	}

	// Signing out at the app ends the session at the wiki as well.
	err = chromedp.Do(ctx,
		chromedp.Navigate(app+"/.mfa/"),
		chromedp.WaitVisible(`form[action="/.mfa/logout"] button`),
		submit(`form[action="/.mfa/logout"] button`),
		chromedp.Navigate(wiki+"/page"),
		chromedp.WaitVisible(`#username`),
		store(&location, chromedp.Location()),
		shots.shot("signed-out"),
	)
	if err != nil {
		t.Fatalf("signing out: %v", err)
	}
	if !strings.HasPrefix(location, wiki+"/.mfa/") {
		t.Fatalf("after signing out at the app, the wiki page is at %q, want its sign-in page", location)
	}
}
