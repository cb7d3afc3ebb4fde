package caddymfa

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A templates directory replaces a block of the page; the name, logo and
// stylesheet reach the pages. The logo is served under the pages' CSP
// (SECURITY.md G36).
func TestBrandingPages(t *testing.T) {
	dir := t.TempDir()
	tmpl := t.TempDir()
	writeFile(t, tmpl, "brand.html", `{{define "brand"}}<header class="brand" id="own">{{.SiteName}} sign-in</header>{{end}}`)
	h, outbox := testConfig(t)
	h.SiteName = "Example Corp"
	h.Logo = writeFile(t, dir, "logo.png", "\x89PNG\r\n\x1a\n0000")
	h.CSS = writeFile(t, dir, "brand.css", ":root { --accent: #0b6e4f; }")
	h.Templates = tmpl
	e := newEnv(t, h, outbox)
	b := e.browser("alice")
	page := body(t, b.do(request{target: "/.mfa/"}))
	if !strings.Contains(page, `<header class="brand" id="own">Example Corp sign-in</header>`) || !strings.Contains(page, "<title>Sign in · Example Corp</title>") {
		t.Errorf("branded page:\n%s", page)
	}
	resp := b.do(request{target: "/.mfa/logo"})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" || !strings.HasPrefix(resp.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("logo: %d %v", resp.StatusCode, resp.Header)
	}
	resp.Body.Close()
	if css := body(t, b.do(request{target: "/.mfa/style.css"})); !strings.HasSuffix(css, ":root { --accent: #0b6e4f; }") || !strings.HasPrefix(css, string(styleCSS)) {
		t.Errorf("stylesheet:\n%s", css)
	}
}

// Branding files are checked when the config loads.
func TestBrandingRefused(t *testing.T) {
	dir := t.TempDir()
	bad := func(name, body string) string {
		d := t.TempDir()
		writeFile(t, d, name, body)
		return d
	}
	tests := []struct {
		name   string
		change func(*Handler)
		want   string
	}{
		{"logo type", func(h *Handler) { h.Logo = writeFile(t, dir, "logo.bmp", "BM") }, "logo"},
		{"logo not an image", func(h *Handler) { h.Logo = writeFile(t, dir, "logo.png", "hello") }, "not an image"},
		{"logo missing", func(h *Handler) { h.Logo = filepath.Join(dir, "none.svg") }, "logo"},
		{"css missing", func(h *Handler) { h.CSS = filepath.Join(dir, "none.css") }, "css"},
		{"site name lines", func(h *Handler) { h.SiteName = "a\nb" }, "site_name"},
		{"template parse", func(h *Handler) { h.Templates = bad("brand.html", `{{define "brand"}}{{if}}{{end}}`) }, "brand.html"},
		{"template call", func(h *Handler) { h.Templates = bad("brand.html", `{{define "brand"}}{{.NoSuchField}}{{end}}`) }, "NoSuchField"},
		{"page without error", func(h *Handler) {
			h.Templates = bad("page.html", `<html>{{template "languages" .}}</html>`)
		}, `{{template "error" .}}`},
		{"no html files", func(h *Handler) { h.Templates = t.TempDir() }, "no .html"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := testConfig(t)
			tt.change(h)
			if err := provisionOnly(t, h); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
	// A whole page that calls what it must is accepted.
	h, _ := testConfig(t)
	h.Templates = bad("page.html", `<!doctype html><html lang="{{.Lang.Tag}}"><title>x</title><main>{{template "error" .}}</main>{{template "languages" .}}</html>`)
	if err := provisionOnly(t, h); err != nil {
		t.Errorf("a complete page: %v", err)
	}
}
