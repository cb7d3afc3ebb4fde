package caddymfa

import (
	"bytes"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"text/template/parse"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Limits of the branding files, read once at provision.
const (
	maxLogoSize = 256 << 10
	maxCSSSize  = 256 << 10
	maxSiteName = 100
)

// logoTypes are the image types a logo may have, by file extension.
var logoTypes = map[string]string{
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".jpg":  "image/jpeg",
	".jpeg": "image/jpeg",
	".webp": "image/webp",
	".gif":  "image/gif",
}

// requiredTemplates are the templates a replaced page must still call:
// the error message of a step, and the language switcher.
var requiredTemplates = []string{"error", "languages"}

// brand is the site's own look: its name, logo, extra stylesheet and
// templates, checked and read at provision. The zero brand is the
// built-in look.
type brand struct {
	siteName string
	logo     []byte
	logoType string
	css      []byte // the built-in sheet with the site's appended
	tmpl     *template.Template
	root     string // the template that is the page
}

// sitePage is the name of a page.html of the templates directory.
const sitePage = "site-page.html"

// loadBrand reads and checks the branding options (SECURITY.md G36: still
// no external asset and no inline script; the logo and the stylesheet
// are served from path_prefix under the same CSP).
func loadBrand(siteName, logo, css, templates string) (*brand, error) {
	b := &brand{siteName: strings.TrimSpace(siteName), css: styleCSS, tmpl: pageTemplate, root: "page.html"}
	if utf8.RuneCountInString(b.siteName) > maxSiteName || strings.ContainsFunc(b.siteName, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, fmt.Errorf("site_name: at most %d characters on one line", maxSiteName)
	}
	if logo != "" {
		typ, ok := logoTypes[strings.ToLower(filepath.Ext(logo))]
		if !ok {
			return nil, fmt.Errorf("logo %s: want an .svg, .png, .jpg, .webp or .gif file", logo)
		}
		data, err := readLimited(logo, maxLogoSize)
		if err != nil {
			return nil, fmt.Errorf("logo: %w", err)
		}
		if typ != "image/svg+xml" && !strings.HasPrefix(http.DetectContentType(data), "image/") {
			return nil, fmt.Errorf("logo %s: the file is not an image", logo)
		}
		b.logo, b.logoType = data, typ
	}
	if css != "" {
		data, err := readLimited(css, maxCSSSize)
		if err != nil {
			return nil, fmt.Errorf("css: %w", err)
		}
		if !utf8.Valid(data) {
			return nil, fmt.Errorf("css %s: not UTF-8 text", css)
		}
		b.css = slices.Concat(styleCSS, []byte("\n/* "+filepath.Base(css)+" */\n"), data)
	}
	if templates != "" {
		t, root, err := loadTemplates(templates)
		if err != nil {
			return nil, fmt.Errorf("templates: %w", err)
		}
		b.tmpl, b.root = t, root
	}
	return b, nil
}

func readLimited(name string, limit int64) ([]byte, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return nil, err
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s is larger than %d KiB", name, limit>>10)
	}
	return os.ReadFile(name)
}

// loadTemplates parses the *.html files of dir over a copy of the built-in
// page: a file that defines a block ({{define "brand"}}) replaces that
// block, and a file named page.html replaces the whole page, which must
// still call the error and languages templates. Each step is rendered
// once with sample data, so a template that calls what does not exist
// fails now rather than at a sign-in.
func loadTemplates(dir string) (t *template.Template, root string, err error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.html"))
	if err != nil {
		return nil, "", err
	}
	if len(files) == 0 {
		return nil, "", fmt.Errorf("%s has no .html files", dir)
	}
	t = parsePages()
	root = "page.html"
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return nil, "", err
		}
		name := filepath.Base(f)
		if name == "page.html" {
			name = sitePage // beside the built-in page, which it replaces
			root = sitePage
		}
		if _, err := t.New(name).Parse(string(src)); err != nil {
			return nil, "", fmt.Errorf("%s: %w", f, err)
		}
		if name == sitePage {
			// The same source as text/template, whose tree is the page
			// as written (html/template's is escaped lazily).
			tree, err := texttemplate.New(name).Parse(string(src))
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", f, err)
			}
			for _, req := range requiredTemplates {
				if tree.Tree == nil || !callsTemplate(tree.Tree.Root, req) {
					return nil, "", fmt.Errorf("%s: the page must call {{template %q .}}", f, req)
				}
			}
		}
	}
	for _, step := range sampleSteps {
		v := &view{Step: step, Method: methodEmail, Methods: []string{methodEmail}, Message: "That code is not valid.", Destination: "a***@e***.com", prefix: "/.mfa"}
		var buf bytes.Buffer
		if err := t.ExecuteTemplate(&buf, root, pageData{view: v, Prefix: v.prefix}); err != nil {
			return nil, "", fmt.Errorf("%s: step %s: %w", dir, step, err)
		}
	}
	return t, root, nil
}

// sampleSteps are the steps loadTemplates renders to check a template.
var sampleSteps = []string{stepIdentify, stepChoose, stepVerify, stepLinkSent, stepDone, stepNotice, ""}

// callsTemplate reports whether the parse tree under n calls the template
// name.
func callsTemplate(n parse.Node, name string) bool {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return false
		}
		for _, c := range n.Nodes {
			if callsTemplate(c, name) {
				return true
			}
		}
	case *parse.TemplateNode:
		return n.Name == name
	case *parse.IfNode:
		return callsTemplate(n.List, name) || callsTemplate(n.ElseList, name)
	case *parse.RangeNode:
		return callsTemplate(n.List, name) || callsTemplate(n.ElseList, name)
	case *parse.WithNode:
		return callsTemplate(n.List, name) || callsTemplate(n.ElseList, name)
	}
	return false
}

// serveLogo answers GET /logo with the configured logo. The page CSP
// (setPageHeaders) applies, so an SVG opened on its own runs no script.
func (h *Handler) serveLogo(w http.ResponseWriter, r *http.Request) error {
	b := h.pages.brand
	if b == nil || b.logo == nil {
		return caddyhttp.Error(http.StatusNotFound, errNoLogo)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD")
	}
	w.Header().Set("Content-Type", b.logoType)
	w.Header().Set("Content-Length", strconv.Itoa(len(b.logo)))
	w.Header().Set("Cache-Control", "public, max-age=3600")
	if r.Method == http.MethodHead {
		return nil
	}
	_, err := w.Write(b.logo)
	return err
}

// site is the name messages and pages give the site: site_name, else the
// host of base_url or of the request.
func (h *Handler) site(r *http.Request) string {
	if b := h.pages.brand; b != nil && b.siteName != "" {
		return b.siteName
	}
	return siteName(r, h.baseURL)
}

var errNoLogo = errors.New("no logo configured")
