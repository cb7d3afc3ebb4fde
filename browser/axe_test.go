package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
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
