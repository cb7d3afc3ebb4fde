package caddymfa

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"strconv"
	"strings"
)

//go:embed assets/page.html assets/style.css assets/link.js
var assets embed.FS

var pageTemplate = template.Must(template.ParseFS(assets, "assets/page.html"))

var styleCSS, _ = assets.ReadFile("assets/style.css")

// linkJS posts a sign-in link's token from the URL fragment (serveLink).
var linkJS, _ = assets.ReadFile("assets/link.js")

// contentSecurityPolicy allows nothing but our own stylesheet and script
// (link.js, embedded): no inline or third-party scripts, no frames, forms
// only to ourselves (SECURITY.md G36).
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// setPageHeaders sets the security headers of every answer under
// PathPrefix.
func setPageHeaders(w http.ResponseWriter) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Cache-Control", "no-store")
}

// pageData is what the template sees.
type pageData struct {
	*view
	Prefix string
}

// Standalone reports whether the visitor named themselves (no first
// factor), so the page must not say what is on file.
func (p pageData) Standalone() bool { return p.standalone }

// ExpiresText is the code lifetime in words.
func (p pageData) ExpiresText() string {
	s := p.ExpiresIn
	switch {
	case s >= 120:
		return strconv.Itoa((s+59)/60) + " minutes"
	case s >= 60:
		return "1 minute"
	case s == 1:
		return "1 second"
	}
	return strconv.Itoa(s) + " seconds"
}

// OutOfAttempts reports whether the code on the page can no longer be
// tried, so the page offers a new one.
func (p pageData) OutOfAttempts() bool { return p.AttemptsLeft != nil && *p.AttemptsLeft == 0 }

// AttemptsText says how many attempts are left, if known.
func (p pageData) AttemptsText() string {
	switch {
	case p.AttemptsLeft == nil:
		return ""
	case *p.AttemptsLeft == 1:
		return "1 attempt left."
	}
	return strconv.Itoa(*p.AttemptsLeft) + " attempts left."
}

// QRSrc is the QR code image as a data URI. html/template refuses data:
// URIs in attributes unless told they are safe; this one is ours, a
// base64 PNG, and nothing else passes.
func (p pageData) QRSrc() template.URL {
	if !strings.HasPrefix(p.QRCode, "data:image/png;base64,") {
		return ""
	}
	return template.URL(p.QRCode)
}

// OTPAuthHref is the otpauth URI as a link, for enrolling on the phone
// that shows the page. The URI is built by totp.URI, which escapes every
// part.
func (p pageData) OTPAuthHref() template.URL {
	if !strings.HasPrefix(p.OTPAuthURI, "otpauth://totp/") {
		return ""
	}
	return template.URL(p.OTPAuthURI)
}

// Back is the link back from an enrollment page.
func (p pageData) Back() string { return p.back }

// RecoveryText says how many recovery codes are left.
func (p pageData) RecoveryText() string {
	switch {
	case p.RecoveryLeft == nil:
		return ""
	case *p.RecoveryLeft == 0:
		return "You have no recovery codes left: make new ones."
	case *p.RecoveryLeft == 1:
		return "You have 1 unused recovery code."
	}
	return "You have " + strconv.Itoa(*p.RecoveryLeft) + " unused recovery codes."
}

func writePage(w http.ResponseWriter, status int, v *view) error {
	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, pageData{view: v, Prefix: v.prefix}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// serveLinkJS serves the script of the link page.
func serveLinkJS(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, err := w.Write(linkJS)
	return err
}

func serveStyle(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, err := w.Write(styleCSS)
	return err
}
