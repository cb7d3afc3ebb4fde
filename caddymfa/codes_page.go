package caddymfa

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// codesJS offers copying and printing the recovery codes (assets/codes.js,
// served under path_prefix, as the CSP allows no inline script).
var codesJS, _ = assets.ReadFile("assets/codes.js")

// serveCodesJS serves the script of the recovery codes page.
func serveCodesJS(w http.ResponseWriter, _ *http.Request) error {
	return writeScript(w, codesJS)
}

// writeScript answers with one of the pages' scripts.
func writeScript(w http.ResponseWriter, js []byte) error {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, err := w.Write(js)
	return err
}

// CodesFile is the recovery codes as a text file, a data: URL that the
// page's download link saves without a script and without keeping the
// codes on the server: the CSP's default-src does not cover a download.
func (p pageData) CodesFile() template.URL {
	text := strings.Join(p.RecoveryCodes, "\r\n") + "\r\n"
	//nolint:gosec // a data: URL of plain text, every byte escaped
	return template.URL("data:text/plain;charset=utf-8," + url.PathEscape(text))
}
