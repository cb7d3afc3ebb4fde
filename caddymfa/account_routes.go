package caddymfa

import (
	"bytes"
	"embed"
	"html/template"
	"net/http"
	"time"

	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

//go:embed assets/account.html
var accountAssets embed.FS

var accountTemplate = template.Must(template.ParseFS(accountAssets, "assets/account.html"))

// Paths of the account page, under PathPrefix.
const (
	accountPath        = "/account"
	accountConfirmPath = "/account/confirm"
)

// serveAccount serves GET and POST {path_prefix}/account, the page where
// a signed-in user sees their methods, recovery codes, sessions and
// remembered devices and ends them, and GET /account/confirm, which
// starts passing a factor again before such a change.
func (h *Handler) serveAccount(w http.ResponseWriter, r *http.Request, sub string) error {
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	switch {
	case sub == accountConfirmPath && !get:
		return methodNotAllowed(w, "GET, HEAD")
	case !get && r.Method != http.MethodPost:
		return methodNotAllowed(w, "GET, HEAD, POST")
	}
	f, ff, refusal := h.readPage(w, r)
	if refusal != nil {
		return h.pages.render(w, r, refusal)
	}
	s, ok, err := h.sessions.checkErr(r.Context(), h.realm.read(r, cookieSession), ff, r.Host)
	if err != nil {
		return h.pages.unavailable(w, r, "reading session", err)
	}
	if !ok {
		return h.accountSignIn(w, r, ff, "")
	}
	if sub == accountConfirmPath {
		return h.accountSignIn(w, r, ff, s.User)
	}
	if get {
		v, err := h.accountView(r, s)
		if err != nil {
			return h.pages.unavailable(w, r, "reading account", err)
		}
		h.takeAccountNotice(w, r, v)
		return h.renderAccount(w, r, v)
	}
	if !h.keys.validCSRF("s:"+requestSessionID(r, h.sessions), f.CSRFToken) {
		if wantsJSON(r) {
			return h.pages.render(w, r, errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Reload it and try again."))
		}
		return h.accountRefusal(w, r, s, http.StatusForbidden, errCodeCSRF, "This page has expired. Reload it and try again.")
	}
	return h.accountAction(w, r, f, s)
}

// accountSignIn sends a browser to the sign-in, which comes back to the
// account page. For a signed-in user (again, non-empty), who passes a
// factor to confirm a change, the flow names them and says it is not
// the first sign-in, so the steps show despite the session.
func (h *Handler) accountSignIn(w http.ResponseWriter, r *http.Request, ff, again string) error {
	if r.Method == http.MethodPost {
		v := errorView(http.StatusUnauthorized, "mfa_required", "Sign in first.")
		v.Redirect = h.PathPrefix + "/"
		return h.pages.render(w, r, v)
	}
	flow := h.flows.read(r, ff)
	if flow == nil || again != "" {
		var err error
		if flow, err = h.flows.start(ff, "", ""); err != nil {
			return err
		}
	}
	flow.Return = h.PathPrefix + accountPath
	if again != "" {
		flow.Next = stepAccount
		if ff == "" {
			flow.User = again
		}
	}
	c, err := h.flows.cookie(r, flow)
	if err != nil {
		return err
	}
	http.SetCookie(w, c)
	if wantsJSON(r) {
		if again == "" {
			v := errorView(http.StatusUnauthorized, "mfa_required", msgMFARequired)
			v.Redirect = h.PathPrefix + "/"
			return h.pages.render(w, r, v)
		}
		v, err := h.stepView(r, flow)
		if err != nil {
			return h.pages.unavailable(w, r, "reading flow state", err)
		}
		return h.pages.render(w, r, v)
	}
	http.Redirect(w, r, h.PathPrefix+"/", http.StatusSeeOther)
	return nil
}

// accountPage is what the account template sees; its texts come from
// the catalog in the language of the request, as the sign-in pages'.
type accountPage struct {
	*accountView
	Prefix string
	page   pageData
}

// Lang is the language of the page.
func (p accountPage) Lang() *i18n.Lang { return p.page.Lang() }

// T is the message key in the page's language, as HTML (pageData.T).
func (p accountPage) T(key string, args ...string) template.HTML { return p.page.T(key, args...) }

// Text is the message key as plain text, for the title.
func (p accountPage) Text(key string) string { return p.page.Text(key) }

// Has says whether the user has a method of kind on file, so the page
// offers to change it rather than to add one.
func (p accountPage) Has(kind string) bool {
	for _, m := range p.Methods {
		if m.Kind == kind {
			return true
		}
	}
	return false
}

// Date is t as a date that reads the same in every language.
func (p accountPage) Date(t time.Time) string { return t.Format(time.DateOnly) }

// MethodName is a session's sign-in method in the page's language; a
// method the catalog has no name for stays as it is.
func (p accountPage) MethodName(m string) string {
	key := map[string]string{methodEmail: "account.email", methodSMS: "account.sms", methodTOTP: "account.totp",
		methodPasskey: "account.passkey", methodRecovery: "account.recovery_code"}[m]
	if key == "" {
		return m
	}
	return p.page.Text(key)
}

// RecoveryText says how many recovery codes are left.
func (p accountPage) RecoveryText() string { return p.page.RecoveryText() }

// renderAccount answers with the account page or its JSON.
func (h *Handler) renderAccount(w http.ResponseWriter, r *http.Request, v *accountView) error {
	status := v.status
	if status == 0 {
		status = http.StatusOK
	}
	l := h.pages.requestLang(r)
	if v.Message != "" {
		v.Message = localize(l, v.Message, nil)
	}
	if wantsJSON(r) {
		return writeJSON(w, status, v)
	}
	now := h.now()
	for i := range v.Sessions {
		v.Sessions[i].seen = agoText(l, now, v.Sessions[i].LastSeen)
		v.Sessions[i].name = deviceNameIn(l, v.Sessions[i].Browser, v.Sessions[i].System)
	}
	for i := range v.Devices {
		v.Devices[i].seen = agoText(l, now, v.Devices[i].LastSeen)
		v.Devices[i].name = deviceNameIn(l, v.Devices[i].Browser, v.Devices[i].System)
	}
	page := pageData{view: &view{User: v.User, RecoveryLeft: v.RecoveryLeft, lang: l}, Prefix: h.PathPrefix, cat: h.pages.catalog()}
	var buf bytes.Buffer
	if err := accountTemplate.Execute(&buf, accountPage{accountView: v, Prefix: h.PathPrefix, page: page}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := w.Write(buf.Bytes())
	return err
}
