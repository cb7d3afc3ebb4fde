package browser

import (
	"context"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/caddymfa/caddy-mfa/examples"
)

// axeSource returns axe.min.js: the file $AXE_CORE_JS, or else axe-core
// installed from the npm registry into a temporary directory. Without npm the test skips, and fails
// in CI.
func axeSource(t *testing.T) string {
	t.Helper()
	// AXE_CORE_JS names an axe.min.js installed beforehand, for runs
	// without network (.ci/run installs it once).
	if p := os.Getenv("AXE_CORE_JS"); p != "" {
		src, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(src)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("npm not found; CI needs it to install axe-core")
		}
		t.Skip("npm not found: the accessibility test installs axe-core with it")
	}
	dir := t.TempDir()
	cmd := exec.Command(npm, "install", "--prefix", dir, "--no-save", "--no-audit", "--no-fund", "--no-package-lock", "axe-core@4")
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(dir, ".npm"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm install axe-core: %v\n%s", err, out)
	}
	src, err := os.ReadFile(filepath.Join(dir, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

// axeCheck injects axe-core into the page and reports every violation of
// WCAG 2.1 A and AA and best practice.
func axeCheck(t *testing.T, src, what string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := chromedp.Evaluate[any](src+";0")(ctx, tg); err != nil {
			return err
		}
		found, err := chromedp.Evaluate[[]string](`axe.run(document, {resultTypes: ["violations"]}).then(r =>
			r.violations.map(v => v.id + " (" + v.impact + "): " + v.help + " at " + v.nodes.map(n => n.target.join(" ")).join(", ")))`,
			chromedp.EvalAwaitPromise)(ctx, tg)
		if err != nil {
			return err
		}
		for _, v := range found {
			t.Errorf("%s: axe: %s", what, v)
		}
		return nil
	})
}

// headers makes the tab send these headers with every request.
func headers(h network.Headers) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: h})
		return err
	})
}

// colorScheme emulates prefers-color-scheme.
func colorScheme(scheme string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
		})
		return err
	})
}

// TestAccessibility runs axe-core over the sign-in pages (choose, code
// sent, wrong code, out of attempts, 404, signed in) in English, German
// and Arabic, light and dark, at desktop and phone sizes, and keeps a
// screenshot of each.
func TestAccessibility(t *testing.T) {
	src := axeSource(t)
	for _, vp := range viewports {
		t.Run(vp.name, func(t *testing.T) {
			// One user goes through many sign-ins here: no cooldown between
			// sends, and no lockout after the wrong codes.
			srv := examples.Start(t, "quickstart", examples.Options{Rewrite: func(cfg map[string]any) {
				eachMFA(cfg, func(h map[string]any) {
					h["lockout"] = map[string]any{"failures": 100, "user_failures": 100}
					if e, ok := h["email"].(map[string]any); ok {
						e["throttle"] = map[string]any{"cooldown": -1, "per_user_per_hour": -1, "per_ip_per_hour": -1, "per_destination_per_hour": -1, "per_5m": -1, "per_hour": -1}
					}
				})
			}})
			mailbox := filepath.Join(srv.Dir, "mailbox")
			shots := newShooter(t)
			auth := "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:alice"))
			sent := 0
			for _, lang := range []string{"en", "de", "ar"} {
				for _, scheme := range []string{"light", "dark"} {
					// A browser for each, within its time limit.
					ctx, cancel := newBrowser(t, vp.width, vp.height)
					defer cancel()
					at := func(page string) string { return lang + " " + scheme + " " + page }
					err := chromedp.Do(ctx,
						chromedp.EmulateViewport(int64(vp.width), int64(vp.height)),
						headers(network.Headers{"Authorization": auth, "Accept-Language": lang}),
						colorScheme(scheme),
						chromedp.Navigate(srv.URL("/")),
						chromedp.WaitVisible(`form[action="/.mfa/send"] button`),
						axeCheck(t, src, at("choose")),
						shots.shot(lang+"-"+scheme+"-choose"),
						submit(`form[action="/.mfa/send"] button`),
						chromedp.WaitVisible(`#code`),
						axeCheck(t, src, at("code sent")),
					)
					if err != nil {
						t.Fatalf("%s: %v", at("sign-in"), err)
					}
					sent++
					examples.WaitOutbox(t, mailbox, sent)
					for i := range 3 {
						if err := chromedp.Do(ctx,
							chromedp.SendKeys(`#code`, "000000"),
							submit(`form[action="/.mfa/verify"] button`),
							chromedp.WaitVisible(`p[role="alert"]`),
						); err != nil {
							t.Fatalf("%s: wrong code %d: %v", at("verify"), i, err)
						}
						if i == 0 {
							if err := chromedp.Do(ctx, axeCheck(t, src, at("wrong code")), shots.shot(lang+"-"+scheme+"-wrong-code")); err != nil {
								t.Fatal(err)
							}
						}
					}
					var disabled bool
					err = chromedp.Do(ctx,
						store(&disabled, chromedp.Evaluate[bool](`document.querySelector("#code").disabled`)),
						axeCheck(t, src, at("out of attempts")),
						shots.shot(lang+"-"+scheme+"-no-attempts"),
						chromedp.Navigate(srv.URL("/.mfa/nowhere")),
						chromedp.WaitVisible(`h1`),
						axeCheck(t, src, at("404")),
					)
					if err != nil {
						t.Fatalf("%s: %v", at("out of attempts"), err)
					}
					if !disabled {
						t.Errorf("%s: the code field is enabled with no attempt left", at("out of attempts"))
					}
				}
			}
			// Signed in, in Arabic and dark.
			ctx, cancel := newBrowser(t, vp.width, vp.height)
			defer cancel()
			err := chromedp.Do(ctx,
				chromedp.EmulateViewport(int64(vp.width), int64(vp.height)),
				headers(network.Headers{"Authorization": auth, "Accept-Language": "ar"}),
				colorScheme("dark"),
				chromedp.Navigate(srv.URL("/")),
				chromedp.WaitVisible(`form[action="/.mfa/send"] button`),
				submit(`form[action="/.mfa/send"] button`),
				chromedp.WaitVisible(`#code`),
			)
			if err != nil {
				t.Fatal(err)
			}
			msg := examples.WaitOutbox(t, mailbox, sent+1)
			var dir string
			err = chromedp.Do(ctx,
				chromedp.SendKeys(`#code`, msg.Code),
				submit(`form[action="/.mfa/verify"] button`),
				chromedp.Navigate(srv.URL("/.mfa/")),
				chromedp.WaitVisible(`form[action="/.mfa/logout"]`),
				store(&dir, chromedp.Evaluate[string](`document.documentElement.dir`)),
				axeCheck(t, src, "ar dark signed in"),
				shots.shot("ar-dark-signed-in"),
			)
			if err != nil {
				t.Fatal(err)
			}
			if dir != "rtl" {
				t.Errorf("Arabic page dir = %q", dir)
			}
		})
	}
}

// eachMFA calls f with every mfa handler of an adapted config.
func eachMFA(v any, f func(map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == "mfa" {
			f(v)
		}
		for _, c := range v {
			eachMFA(c, f)
		}
	case []any:
		for _, c := range v {
			eachMFA(c, f)
		}
	}
}
