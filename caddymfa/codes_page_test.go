package caddymfa

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The recovery codes page offers the codes as a file to download (a
// data: URL, no script needed) and copy and print buttons that its own
// script, served under the prefix, shows: the page has no inline script,
// as the CSP allows none (SECURITY.md G36).
func TestRecoveryCodesDownloadCopyPrint(t *testing.T) {
	e := totpEnv(t, "")
	b := e.signIn("alice")
	_, page := b.enrollPage("")
	secret := page["secret"].(string)
	resp := b.do(request{method: http.MethodPost, target: "/.mfa/enroll/totp", form: url.Values{"code": {e.code(secret, 0)}, "csrf_token": {page["csrf_token"].(string)}}})
	html := body(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(html, `<ol class="codes" id="codes">`) {
		t.Fatalf("recovery codes page: status %d\n%s", resp.StatusCode, html)
	}
	var codes []string
	for _, m := range regexp.MustCompile(`<li><code>([^<]+)</code></li>`).FindAllStringSubmatch(html, -1) {
		codes = append(codes, m[1])
	}
	if len(codes) == 0 {
		t.Fatalf("no codes on the page:\n%s", html)
	}

	m := regexp.MustCompile(`<a class="button alt" download="recovery-codes.txt" href="data:text/plain;charset=utf-8,([^"]+)">`).FindStringSubmatch(html)
	if m == nil {
		t.Fatalf("no download link:\n%s", html)
	}
	file, err := url.PathUnescape(strings.ReplaceAll(m[1], "&#43;", "+"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(codes, "\r\n") + "\r\n"; file != want {
		t.Errorf("downloaded file %q, want %q", file, want)
	}

	for _, want := range []string{`<button type="button" class="alt" id="codes-copy" hidden>Copy</button>`,
		`<button type="button" class="alt" id="codes-print" hidden>Print</button>`, `<script src="/.mfa/codes.js"></script>`} {
		if !strings.Contains(html, want) {
			t.Errorf("recovery codes page lacks %s", want)
		}
	}
	if n, m := strings.Count(html, "<script"), strings.Count(html, "<script src="); n != m {
		t.Errorf("%d scripts, %d of them inline", n, n-m)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}

	resp = b.do(request{target: "/.mfa/codes.js"})
	js := body(t, resp)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/javascript; charset=utf-8" ||
		!strings.Contains(js, "navigator.clipboard.writeText") || !strings.Contains(js, "window.print()") {
		t.Errorf("codes.js: status %d, type %q\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), js)
	}
}
