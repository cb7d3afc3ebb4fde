package browser

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/caddymfa/caddy-mfa/examples"
	"github.com/caddymfa/caddy-mfa/internal/mailtest"
)

// TestLinkNumberMatching (SECURITY.md L57, K52) drives a link sign-in in
// two Chromiums: the first asks for a link and waits on a page that shows
// a two-digit number; the second, another device, opens the link (its
// script posts the token from the URL fragment), is shown where the
// sign-in began and three numbers, and picks the first browser's; the
// first browser then continues by itself.
func TestLinkNumberMatching(t *testing.T) {
	asker, cancelAsker := newBrowser(t, 1280, 800)
	defer cancelAsker()
	phone, cancelPhone := newBrowser(t, 390, 844)
	defer cancelPhone()
	srv := examples.Start(t, "quickstart", examples.Options{Rewrite: linkMode})
	mailbox := filepath.Join(srv.Dir, "mailbox")
	shots := newShooter(t)

	var number string
	err := chromedp.Do(asker,
		openAsAlice(srv.URL("/")),
		submit(sendButton),
		chromedp.WaitVisible(`.match-number`),
		store(&number, chromedp.Text(`.match-number`)),
		shots.shot("waiting"),
	)
	if err != nil {
		t.Fatalf("asking for a link: %v", err)
	}
	if !regexp.MustCompile(`^\d\d$`).MatchString(number) {
		t.Fatalf("the waiting page shows %q, want a two-digit number", number)
	}
	link := waitLink(t, mailbox)
	if !strings.Contains(link, "/.mfa/link#") {
		t.Fatalf("link %q does not carry its token in the fragment", link)
	}

	var location, page string
	var buttons []string
	err = chromedp.Do(phone,
		asAlice(),
		chromedp.Navigate(link),
		chromedp.WaitVisible(`.numbers button`),
		store(&location, chromedp.Location()),
		store(&page, chromedp.Text("main")),
		store(&buttons, chromedp.Evaluate[[]string](`[...document.querySelectorAll('.numbers button')].map(b => b.value)`)),
		shots.shot("pick-a-number"),
	)
	if err != nil {
		t.Fatalf("opening the link on another device: %v", err)
	}
	if strings.Contains(location, "#") {
		t.Errorf("the token stayed in the address bar: %s", location)
	}
	if len(buttons) != 3 || !strings.Contains(strings.Join(buttons, " "), number) {
		t.Fatalf("the confirm page offers %v, want three numbers with %s", buttons, number)
	}
	if !strings.Contains(page, "another browser") || !strings.Contains(page, "Started:") {
		t.Errorf("the confirm page does not say where and when the sign-in began:\n%s", page)
	}
	var confirmed string
	err = chromedp.Do(phone,
		submit(fmt.Sprintf(`.numbers button[value="%s"]`, number)),
		store(&confirmed, chromedp.Text("h1")),
		shots.shot("confirmed"),
	)
	if err != nil {
		t.Fatalf("picking the number: %v", err)
	}
	if confirmed != "Sign-in confirmed" {
		t.Fatalf("after the right number the page says %q", confirmed)
	}

	// The waiting page refreshes itself into the site.
	var body string
	err = chromedp.Do(asker,
		chromedp.WaitVisible(`body:not(:has(main))`),
		store(&body, chromedp.Text("body")),
	)
	if err != nil {
		t.Fatalf("waiting for the first browser to continue: %v", err)
	}
	if want := "Hello alice, you passed MFA (email)."; body != want {
		t.Fatalf("the first browser shows %q, want %q", body, want)
	}
}

// linkMode turns the quickstart's email into sign-in links from its own
// address.
func linkMode(cfg map[string]any) {
	withBaseURL(cfg)
	eachMFA(cfg, func(h map[string]any) {
		if e, ok := h["email"].(map[string]any); ok {
			e["send"] = "link"
		}
	})
}

var linkInMail = regexp.MustCompile(`https?://\S+/\.mfa/link#[A-Za-z0-9_-]+`)

// waitLink waits for the first message of the outbox and returns its link.
func waitLink(t *testing.T, dir string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := examples.Outbox(dir)
		if len(files) > 0 {
			raw, err := os.ReadFile(files[0])
			if err != nil {
				t.Fatal(err)
			}
			m, err := mailtest.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if link := linkInMail.FindString(m.Text); link != "" {
				return link
			}
			t.Fatalf("no link in the message:\n%s", m.Text)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no message in the outbox")
	return ""
}
