package caddymfa

import (
	"net/http"
	"net/url"
)

// The sign-in's forms end in a 303 like the registration forms: a wrong,
// expired or exhausted code, or a send refused, sends the browser back to
// the flow's page, which says what the POST answer said, once, through
// the notice cookie (flash.go). A reload then posts nothing and uses no
// attempt. JSON clients get the answer itself.

// flashSignIn names the sign-in's page for the notice cookie.
const flashSignIn = "signin"

// failedView is the answer to a failed code for flow: the same for
// wrong, expired, exhausted and locked (SECURITY.md A7).
func (h *Handler) failedView(r *http.Request, flow *flowState, method string, attemptsLeft int) *view {
	acct := h.account(r, flow.FirstFactor, flow.user())
	dest := ""
	if _, isChannel := h.methods.channel(method); isChannel && flow.FirstFactor != "" {
		dest = acct.destination(r.Context(), method)
	}
	return h.pages.failed(flow, acct.principal, method, dest, attemptsLeft)
}

// signInRefused answers a sign-in form whose result is the error v:
// JSON clients get v; browsers a 303 to the flow's page (the code form of
// an app or recovery code by its method), which shows v once.
func (h *Handler) signInRefused(w http.ResponseWriter, r *http.Request, flow *flowState, v *view) error {
	dest := h.PathPrefix + "/"
	if v.Method == methodTOTP || v.Method == methodRecovery {
		dest += "?method=" + url.QueryEscape(v.Method)
	}
	return h.redirectWithError(w, r, v, dest, flashSignIn, flow.ID)
}

// signInNotice is the page a sign-in form's 303 lands on, when the
// browser carries the notice of that form for this flow: a failed code
// shows exactly the answer the POST computed (its message and attempts
// left, never the code typed); any other error is shown on the flow's
// step. Nil without a notice.
func (h *Handler) signInNotice(w http.ResponseWriter, r *http.Request, flow *flowState) (*view, error) {
	f := h.readFlash(w, r, flashSignIn, flow.ID)
	if f == nil || flow.user() == "" {
		return nil, nil
	}
	var v *view
	if f.Error == errCodeInvalid && f.Method != "" && flow.allows(f.Method) {
		left := 0 // apps and recovery codes show none
		if f.Left != nil {
			left = *f.Left
		}
		v = h.failedView(r, flow, f.Method, left)
	} else {
		var err error
		if v, err = h.stepView(r, flow); err != nil {
			return nil, err
		}
	}
	h.applyFlash(v, f)
	return v, nil
}

// signInEdge answers a sign-in form refused before it was read as one (a
// page expired, a body that could not be read): a browser whose flow
// names its user is sent back to the flow's page, which says why once;
// any other request gets v itself. Either way nothing was done.
func (h *Handler) signInEdge(w http.ResponseWriter, r *http.Request, flow *flowState, v *view) error {
	if flow == nil || flow.user() == "" {
		return h.pages.render(w, r, v)
	}
	return h.signInRefused(w, r, flow, v)
}
