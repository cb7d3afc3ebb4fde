package browser

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/caddymfa/caddy-mfa/examples"
)

// findChromium returns the browser to drive, skipping the test when there
// is none (failing it in CI).
func findChromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("no Chromium found (looked for $CHROMIUM, chromium, chromium-browser, google-chrome); CI needs it: apt-get install chromium")
	}
	t.Skip("no Chromium found (looked for $CHROMIUM, chromium, chromium-browser, google-chrome); install it (apt-get install chromium) to run the browser tests")
	return ""
}

// newBrowser starts a headless Chromium with a fresh profile, set up for a
// machine without network access: no QUIC, no background or component
// traffic, no sync, no first-run pages.
func newBrowser(t *testing.T, width, height int, extra ...chromedp.ExecAllocatorOption) (context.Context, context.CancelFunc) {
	t.Helper()
	return newBrowserFor(t, 90*time.Second, width, height, extra...)
}

// newBrowserFor is newBrowser for a test that needs the browser longer.
func newBrowserFor(t *testing.T, limit time.Duration, width, height int, extra ...chromedp.ExecAllocatorOption) (context.Context, context.CancelFunc) {
	t.Helper()
	execPath := findChromium(t)
	profile := t.TempDir()
	tmp := t.TempDir() // Chromium's shared memory files, removed with the test
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile),
		chromedp.Env("TMPDIR="+tmp),
		chromedp.WindowSize(width, height),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	opts = append(opts, extra...)
	ctx, cancelTimeout := context.WithTimeout(context.Background(), limit)
	ctx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	ctx, cancelBrowser := chromedp.NewContext(ctx, chromedp.WithErrorf(t.Logf))
	return ctx, func() {
		cancelBrowser() // closes the browser and waits for it to exit
		cancelAlloc()
		cancelTimeout()
	}
}

// shooter saves a screenshot of each step.
type shooter struct {
	t    *testing.T
	dirs []string
	n    int
}

func newShooter(t *testing.T) *shooter {
	s := &shooter{t: t, dirs: []string{t.TempDir()}}
	if d := os.Getenv("BROWSER_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		s.dirs = append(s.dirs, d)
	}
	return s
}

// shot captures the viewport as <test>-<n>-<name>.png.
func (s *shooter) shot(name string) chromedp.Action[chromedp.Void] {
	return s.take(name, chromedp.CaptureScreenshot())
}

// page captures the whole page, beyond the viewport, as
// <test>-<n>-<name>.png.
func (s *shooter) page(name string) chromedp.Action[chromedp.Void] {
	return s.take(name, chromedp.FullScreenshot(100))
}

func (s *shooter) take(name string, capture chromedp.Action[[]byte]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		png, err := capture(ctx, t)
		if err != nil {
			return err
		}
		s.n++
		file := fmt.Sprintf("%s-%d-%s.png", strings.ReplaceAll(s.t.Name(), "/", "_"), s.n, name)
		for _, d := range s.dirs {
			if err := os.WriteFile(filepath.Join(d, file), png, 0o644); err != nil {
				return err
			}
		}
		return nil
	})
}

// setHeader makes the tab send a header with every request.
func setHeader(name, value string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{name: value},
		})
		return err
	})
}

// sendButton is the choose step's button that sends a code.
const sendButton = `form[action="/.mfa/send"] button`

// asAlice makes the tab send the examples' basic_auth credentials for
// alice with every request, as a browser does once its login dialog has
// been filled in.
func asAlice() chromedp.Action[chromedp.Void] {
	return setHeader("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte("alice:alice")))
}

// openAsAlice opens url as alice and waits for the choose step.
func openAsAlice(url string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		for _, a := range []chromedp.Action[chromedp.Void]{asAlice(), chromedp.Navigate(url), chromedp.WaitVisible(sendButton)} {
			if _, err := a(ctx, t); err != nil {
				return err
			}
		}
		return nil
	})
}

// submit clicks a form's button and waits until the page it leads to has
// loaded.
func submit(button string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.Click(button))(ctx, t)
		return err
	})
}

// store runs a and keeps its value in dst.
func store[T any](dst *T, a chromedp.Action[T]) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		v, err := a(ctx, t)
		*dst = v
		return err
	})
}

// viewports are the window sizes every browser test runs at.
var viewports = []struct {
	name          string
	width, height int
}{
	{"desktop", 1280, 800},
	{"phone", 390, 844},
}

// TestQuickstartLogin signs in to examples/quickstart with Chromium, on a
// desktop-sized and a phone-sized viewport.
func TestQuickstartLogin(t *testing.T) {
	for _, tc := range viewports {
		t.Run(tc.name, func(t *testing.T) {
			testQuickstartLogin(t, tc.width, tc.height)
		})
	}
}

func testQuickstartLogin(t *testing.T, width, height int) {
	ctx, cancel := newBrowser(t, width, height)
	defer cancel()
	srv := examples.Start(t, "quickstart", examples.Options{})
	mailbox := filepath.Join(srv.Dir, "mailbox")
	shots := newShooter(t)

	var location, heading string
	err := chromedp.Do(ctx,
		chromedp.EmulateViewport(int64(width), int64(height)),
		openAsAlice(srv.URL("/")),
		store(&location, chromedp.Location()),
		store(&heading, chromedp.Text("h1")),
		shots.shot("choose"),
	)
	if err != nil {
		t.Fatalf("opening the site: %v", err)
	}
	if !strings.HasSuffix(location, "/.mfa/?return=%2F") {
		t.Errorf("the protected page sent the browser to %q, want the sign-in page", location)
	}
	if heading != "Verify it's you" {
		t.Errorf("sign-in page heading = %q", heading)
	}

	var text string
	err = chromedp.Do(ctx,
		submit(sendButton),
		shots.shot("verify"),
		store(&heading, chromedp.Text("h1")),
		store(&text, chromedp.Text("main")),
	)
	if err != nil {
		t.Fatalf("asking for a code: %v", err)
	}
	if heading != "Enter your code" {
		t.Fatalf("after \"Email me a code\" the page is not the code form; it says:\n%s", text)
	}
	msg := examples.WaitOutbox(t, mailbox, 1)
	wrong := "000000"
	if msg.Code == wrong {
		wrong = "111111"
	}

	var alert string
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#code`, wrong),
		submit(`form[action="/.mfa/verify"] button`),
		chromedp.WaitVisible(`p[role="alert"]`),
		store(&alert, chromedp.Text(`p[role="alert"]`)),
		shots.shot("wrong-code"),
	)
	if err != nil {
		t.Fatalf("entering a wrong code: %v", err)
	}
	if !strings.Contains(alert, "not valid") {
		t.Errorf("after a wrong code the page says %q", alert)
	}

	var body string
	err = chromedp.Do(ctx,
		chromedp.SendKeys(`#code`, msg.Code),
		submit(`form[action="/.mfa/verify"] button`),
		store(&location, chromedp.Location()),
		store(&body, chromedp.Text("body")),
		shots.shot("protected-page"),
		chromedp.Navigate(srv.URL("/.mfa/")),
		chromedp.WaitVisible(`form[action="/.mfa/logout"]`),
		shots.shot("signed-in"),
	)
	if err != nil {
		t.Fatalf("entering the code: %v", err)
	}
	if !strings.HasSuffix(location, "/") || strings.Contains(location, "/.mfa/") {
		t.Errorf("after the code the browser is at %q, want the protected page /", location)
	}
	if want := "Hello alice, you passed MFA (email)."; strings.TrimSpace(body) != want {
		t.Fatalf("protected page says %q, want %q", body, want)
	}
}
