package caddymfa

import "net/http"

// The account page's forms end in a 303 like the sign-in's: a refused
// change (a wrong code, a page expired, a session already ended, an
// unknown action) sends the browser back to GET /account, which says
// why, once, through the notice cookie (flash.go). A reload then posts
// nothing. JSON clients get the answer itself.

// flashAccount names the account page for the notice cookie.
const flashAccount = "account"

// accountBinding binds a notice to the session of the browser that
// posted the form.
func (h *Handler) accountBinding(r *http.Request) string {
	return "s:" + requestSessionID(r, h.sessions)
}

// accountNotice answers a browser's account form with a 303 to the
// account page, which shows v's message once.
func (h *Handler) accountNotice(w http.ResponseWriter, r *http.Request, v *view) error {
	return h.redirectWithError(w, r, v, h.PathPrefix+accountPath, flashAccount, h.accountBinding(r))
}

// takeAccountNotice puts the message kept for the account page into v,
// if the browser carries one, and drops it: it is said once.
func (h *Handler) takeAccountNotice(w http.ResponseWriter, r *http.Request, v *accountView) {
	if f := h.readFlash(w, r, flashAccount, h.accountBinding(r)); f != nil {
		v.status, v.Error, v.Message = f.Status, f.Error, f.Message
	}
}
