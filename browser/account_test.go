package browser

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddymfa/caddy-mfa/examples"
)

// TestAccountPage signs alice in to examples/quickstart from two
// Chromium browsers. The first opens the account page from the signed-in
// page, sees both sessions, and clicks "End this one" on the other's:
// the other browser's next page load lands on the sign-in. It signs in
// again; the first clicks "End all others", and the other is signed out
// again while the first still reaches the site. Each ending is notified
// by email.
func TestAccountPage(t *testing.T) {
	srv := examples.Start(t, "quickstart", examples.Options{})
	mailbox := filepath.Join(srv.Dir, "mailbox")
	first, cancelFirst := newBrowser(t, 1280, 800)
	defer cancelFirst()
	second, cancelSecond := newBrowser(t, 390, 844)
	defer cancelSecond()
	shots := newShooter(t)

	signIn := func(ctx context.Context, name string) {
		t.Helper()
		seen := outboxLen(t, mailbox)
		err := chromedp.Do(ctx,
			openAsAlice(srv.URL("/")),
			submit(sendButton),
			chromedp.WaitVisible(`#code`),
		)
		if err != nil {
			t.Fatalf("%s: asking for a code: %v", name, err)
		}
		code := waitMail(t, mailbox, seen, "code").Code
		var body string
		err = chromedp.Do(ctx,
			chromedp.SendKeys(`#code`, code),
			submit(`form[action="/.mfa/verify"] button`),
			store(&body, chromedp.Text("body")),
		)
		if err != nil {
			t.Fatalf("%s: entering the code: %v", name, err)
		}
		if !strings.Contains(body, "Hello alice") {
			t.Fatalf("%s: after the code the page says %q", name, body)
		}
	}
	// signedOut reports whether a page load of the site in ctx lands on
	// the sign-in page.
	signedOut := func(ctx context.Context) bool {
		t.Helper()
		var location string
		err := chromedp.Do(ctx,
			chromedp.Navigate(srv.URL("/")),
			store(&location, chromedp.Location()),
		)
		if err != nil {
			t.Fatalf("loading the site: %v", err)
		}
		return strings.Contains(location, "/.mfa/")
	}

	signIn(first, "first browser")
	signIn(second, "second browser")

	var items []string
	err := chromedp.Do(first,
		chromedp.Navigate(srv.URL("/.mfa/")),
		chromedp.WaitVisible(`a[href="/.mfa/account"]`),
		chromedp.Click(`a[href="/.mfa/account"]`),
		chromedp.WaitVisible(`section[aria-labelledby="sessions"] li.item`),
		store(&items, chromedp.Evaluate[[]string](sessionItemsJS)),
		shots.page("account"),
	)
	if err != nil {
		t.Fatalf("opening the account page: %v", err)
	}
	if len(items) != 2 || !strings.Contains(strings.Join(items, "\n"), "this browser") || !strings.Contains(items[0], "Chrome on Linux") {
		t.Fatalf("the account page lists the sessions %q, want two Chrome on Linux, one of them this browser", items)
	}

	// End the other browser's session.
	seen := outboxLen(t, mailbox)
	var alert string
	err = chromedp.Do(first,
		submit(`section[aria-labelledby="sessions"] li.item:not(:has(.tag)) button`),
		chromedp.WaitVisible(`p[role="alert"]`),
		store(&alert, chromedp.Text(`p[role="alert"]`)),
		store(&items, chromedp.Evaluate[[]string](sessionItemsJS)),
		shots.page("ended"),
	)
	if err != nil {
		t.Fatalf("ending the other session: %v", err)
	}
	if !strings.Contains(alert, "That session was ended") || len(items) != 1 {
		t.Fatalf("after ending: alert %q, sessions %q", alert, items)
	}
	if !signedOut(second) {
		t.Fatal("the ended browser still reaches the site")
	}
	if err := chromedp.Do(second, shots.shot("other-signed-out")); err != nil {
		t.Fatal(err)
	}
	if signedOut(first) {
		t.Fatal("the browser that ended the other one was signed out")
	}
	waitMail(t, mailbox, seen, "signed out")

	// End all others.
	signIn(second, "second browser again")
	seen = outboxLen(t, mailbox)
	err = chromedp.Do(first,
		chromedp.Navigate(srv.URL("/.mfa/account")),
		chromedp.WaitVisible(`form:has(input[value="end_others"]) button`),
		submit(`form:has(input[value="end_others"]) button`),
		chromedp.WaitVisible(`p[role="alert"]`),
		store(&alert, chromedp.Text(`p[role="alert"]`)),
		store(&items, chromedp.Evaluate[[]string](sessionItemsJS)),
		shots.page("ended-others"),
	)
	if err != nil {
		t.Fatalf("ending all others: %v", err)
	}
	if !strings.Contains(alert, "Every other session") || len(items) != 1 || !strings.Contains(items[0], "this browser") {
		t.Fatalf("after ending all others: alert %q, sessions %q", alert, items)
	}
	if !signedOut(second) {
		t.Fatal("after \"End all others\" the other browser still reaches the site")
	}
	if signedOut(first) {
		t.Fatal("\"End all others\" signed out the browser that asked")
	}
	waitMail(t, mailbox, seen, "signed out")
}

// sessionItemsJS reads the text of each session on the account page.
const sessionItemsJS = `[...document.querySelectorAll('section[aria-labelledby="sessions"] li.item')].map(li => li.innerText)`

// outboxLen is how many messages the outbox holds.
func outboxLen(t *testing.T, dir string) int {
	t.Helper()
	names, err := examples.Outbox(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

// waitMail waits for a message after the first seen whose subject
// contains subject and returns it.
func waitMail(t *testing.T, dir string, seen int, subject string) examples.Message {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		names, err := examples.Outbox(dir)
		if err != nil {
			t.Fatal(err)
		}
		for i := seen; i < len(names); i++ {
			raw, err := os.ReadFile(names[i])
			if err != nil {
				t.Fatal(err)
			}
			m, _ := examples.ParseMessage(raw) // a notice has no code
			if strings.Contains(m.Subject, subject) {
				return m
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("outbox %s: no message about %q after 15s", dir, subject)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
