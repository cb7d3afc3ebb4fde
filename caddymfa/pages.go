package caddymfa

import (
	"bytes"
	"cmp"
	"embed"
	"html/template"
	"net/http"
	"strconv"
	"strings"

	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

//go:embed assets/page.html assets/style.css assets/link.js assets/codes.js
var assets embed.FS

// pageTemplate renders every step. Branding builds its own set with
// parsePages instead of cloning this one, because html/template refuses to
// clone a set that has executed.
var pageTemplate = parsePages()

// parsePages parses the built-in page and the templates it calls.
func parsePages() *template.Template {
	t := template.Must(template.ParseFS(assets, "assets/page.html"))
	return template.Must(t.ParseFS(passkeyAssets, "assets/passkey.html"))
}

var styleCSS, _ = assets.ReadFile("assets/style.css")

// linkJS posts a sign-in link's token from the URL fragment (serveLink).
var linkJS, _ = assets.ReadFile("assets/link.js")

// contentSecurityPolicy allows nothing but our own stylesheet and script
// (link.js, embedded) and requests to ourselves (the waiting page asks
// /status): no inline or third-party scripts, no frames, forms only to
// ourselves (SECURITY.md G36).
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// setPageHeaders sets the security headers of every answer under
// PathPrefix. Their values share one new array: one allocation where
// Header.Set makes one per header, and each answer still owns its values.
// Values shared by all answers would cost nothing, but they are not safe:
// Caddy's header handler replaces text in a response's values in place
// (hdr[name][i] = ...), which would change them for every answer.
func setPageHeaders(w http.ResponseWriter) {
	hdr := w.Header()
	v := make([]string, 5)
	v[0], v[1], v[2], v[3], v[4] = contentSecurityPolicy, "no-referrer", "DENY", "nosniff", "no-store"
	hdr["Content-Security-Policy"] = v[0:1:1]
	hdr["Referrer-Policy"] = v[1:2:2]
	hdr["X-Frame-Options"] = v[2:3:3]
	hdr["X-Content-Type-Options"] = v[3:4:4]
	hdr["Cache-Control"] = v[4:5:5]
}

// pageData is what the template sees.
type pageData struct {
	*view
	Prefix string
	cat    *i18n.Catalog
	brand  *brand
}

// SiteName is the site_name, or "".
func (p pageData) SiteName() string {
	if p.brand == nil {
		return ""
	}
	return p.brand.siteName
}

// Logo reports whether a logo is configured (served at Prefix/logo).
func (p pageData) Logo() bool { return p.brand != nil && p.brand.logo != nil }

// Standalone reports whether the visitor named themselves (no first
// factor), so the page must not say what is on file.
func (p pageData) Standalone() bool { return p.standalone }

// Typed is, in standalone mode, the name or address the visitor typed,
// shown back with a link to change it.
func (p pageData) Typed() string { return p.typed }

// Lang is the language of the page.
func (p pageData) Lang() *i18n.Lang {
	if p.lang == nil {
		return p.catalog().English()
	}
	return p.lang
}

// Languages are the languages of the switcher.
func (p pageData) Languages() []*i18n.Lang { return p.catalog().Languages() }

func (p pageData) catalog() *i18n.Catalog {
	if p.cat == nil {
		return i18n.Builtin()
	}
	return p.cat
}

// Here is the page's own address, where the switcher comes back to.
func (p pageData) Here() string { return cmp.Or(p.here, p.Prefix+"/") }

// arg is the value of a placeholder the view itself knows, as HTML: the
// address and the user are set in bold, as the things to check.
func (p pageData) arg(name string) (string, bool) {
	switch name {
	case "dest":
		return "<strong>" + escapeText(p.Destination) + "</strong>", true
	case "user":
		return "<strong>" + escapeText(p.User) + "</strong>", true
	case "expires":
		return escapeText(p.ExpiresText()), true
	case "date":
		return escapeText(p.AppAdded), true
	}
	return "", false
}

// T is the message key in the page's language, as HTML: its text
// escaped, its placeholders filled from args (pairs of name and value,
// escaped; {dest}, {user} and {name} in bold) or from the view.
func (p pageData) T(key string, args ...string) template.HTML {
	return p.html(p.Lang().Text(key, 0), args)
}

// TK is T of key + "_" + the kind of address the page is about ("phone"
// or "email").
func (p pageData) TK(key string) template.HTML {
	kind := "email"
	if p.Method == methodSMS {
		kind = "phone"
	}
	return p.T(key + "_" + kind)
}

// N is the plural message key for the count n, as HTML.
func (p pageData) N(key string, n int) template.HTML {
	return p.html(p.Lang().Text(key, n), []string{"n", strconv.Itoa(n)})
}

// Text is the message key as plain text, for attributes and the title.
func (p pageData) Text(key string) string { return p.Lang().T(key) }

// escapeText escapes text for the content of an element (not an
// attribute): '&', '<', '>' and '"', so apostrophes stay readable.
var escapeText = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;").Replace

func (p pageData) html(text string, args []string) template.HTML {
	//nolint:gosec // every part is escaped: the text, the arguments, the view's values
	return template.HTML(i18n.Expand(text, escapeText, func(name string) (string, bool) {
		for i := 0; i+1 < len(args); i += 2 {
			if args[i] == name && (name == "dest" || name == "user" || name == "name") {
				return "<strong>" + escapeText(args[i+1]) + "</strong>", true
			}
			if args[i] == name {
				return escapeText(args[i+1]), true
			}
		}
		return p.arg(name)
	}))
}

// ExpiresText is the code lifetime in words.
func (p pageData) ExpiresText() string {
	s := p.ExpiresIn
	switch {
	case s >= 120:
		return p.Lang().N("duration.minutes", (s+59)/60)
	case s >= 60:
		return p.Lang().N("duration.minutes", 1)
	}
	return p.Lang().N("duration.seconds", s)
}

// OutOfAttempts reports whether the code on the page can no longer be
// tried, so the page offers a new one.
func (p pageData) OutOfAttempts() bool { return p.AttemptsLeft != nil && *p.AttemptsLeft == 0 }

// AttemptsText says how many attempts are left, if known.
func (p pageData) AttemptsText() string {
	if p.AttemptsLeft == nil {
		return ""
	}
	return p.Lang().N("verify.attempts_left", *p.AttemptsLeft)
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
		return p.Lang().T("settings.recovery_none")
	}
	return p.Lang().N("settings.recovery_left", *p.RecoveryLeft)
}

func writePage(w http.ResponseWriter, status int, v *view, cat *i18n.Catalog, b *brand) error {
	var buf bytes.Buffer
	t, root := pageTemplate, "page.html"
	if b != nil {
		t, root = b.tmpl, b.root
	}
	if err := t.ExecuteTemplate(&buf, root, pageData{view: v, Prefix: v.prefix, cat: cat, brand: b}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}

// serveLinkJS serves the script of the link page.
func serveLinkJS(w http.ResponseWriter, _ *http.Request) error {
	return writeScript(w, linkJS)
}

// serveStyle answers GET /style.css: the built-in sheet with the site's
// own (css) appended.
func (pg *pages) serveStyle(w http.ResponseWriter, r *http.Request) error {
	css := styleCSS
	if pg.brand != nil {
		css = pg.brand.css
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, err := w.Write(css)
	return err
}
