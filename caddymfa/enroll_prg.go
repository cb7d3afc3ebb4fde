package caddymfa

import (
	"net/http"
	"net/url"
)

// The authenticator app's forms end in a 303 like the sign-in's: a wrong
// code of the new app, a wrong code of the current one or a recovery code,
// and a refusal send the browser back to GET /enroll/totp (the setup with
// ?replace=1, or the settings), which says what the POST answer said, once,
// through the notice cookie (flash.go). The secret being set up lives in
// the store under the flow or session, so that page shows the same QR
// code. A reload then posts nothing and spends no try. JSON clients get
// the answer itself.

// flashEnroll names the app's page for the notice cookie.
const flashEnroll = "enroll/totp"

// enrollURL is the address of the app's page: the settings, or with
// replace the setup of a new app.
func (h *Handler) enrollURL(ret string, replace bool) string {
	u := h.PathPrefix + "/enroll/totp"
	q := url.Values{}
	if replace {
		q.Set("replace", "1")
	}
	if ret != "" {
		q.Set("return", ret)
	}
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

// enrollRefused answers an app form whose result is the error v: JSON
// clients get v; browsers a 303 to the app's page (the setup with
// replace), which shows v once.
func (h *Handler) enrollRefused(w http.ResponseWriter, r *http.Request, auth *enrollAuth, v *view, ret string, replace bool) error {
	return h.redirectWithError(w, r, v, h.enrollURL(ret, replace), flashEnroll, auth.binding())
}

// enrollPage answers GET /enroll/totp: the settings or the setup, with
// the error of the form just posted, if any. A page that is itself a
// refusal keeps its own words; the notice is dropped all the same.
func (h *Handler) enrollPage(w http.ResponseWriter, r *http.Request, auth *enrollAuth, ret string) error {
	v := h.enrollView(r, auth, ret, r.URL.Query().Get("replace") != "")
	if f := h.readFlash(w, r, flashEnroll, auth.binding()); f != nil && v.Error == "" {
		h.applyFlash(v, f)
	}
	return h.pages.render(w, r, v)
}
