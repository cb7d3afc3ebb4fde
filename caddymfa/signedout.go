package caddymfa

import (
	"net/http"
	"net/url"
)

// signedOutPath is the page a browser lands on after signing out.
const signedOutPath = "/signed-out"

// toSignedOut ends a sign-out: JSON clients get the signed_out step with
// the sign-in as redirect; browsers a 303 to the signed-out page, so a
// reload shows the page again instead of posting twice. The page's
// address carries only a safe return path (SECURITY.md F32), never a
// session, flow or secret.
func (h *Handler) toSignedOut(w http.ResponseWriter, r *http.Request, ret string) error {
	if wantsJSON(r) {
		return h.pages.render(w, r, &view{Step: stepSignedOut, Redirect: h.PathPrefix + "/"})
	}
	dest := h.PathPrefix + signedOutPath
	if ret, ok := h.realm.safeReturn(ret, h.PathPrefix); ok && ret != "" {
		dest += "?return=" + url.QueryEscape(ret)
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
	return nil
}

// serveSignedOut answers GET /signed-out: a page that says the browser is
// signed out, with "Sign in again" back to the site (the return path if
// it is safe). A browser that is still signed in is sent to the signed-in
// page instead, so the page never says something untrue. It reads no
// state but the session cookie and starts no flow.
func (h *Handler) serveSignedOut(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD")
	}
	ret, _ := h.realm.safeReturn(r.URL.Query().Get("return"), h.PathPrefix)
	if ff, ok := h.firstFactor(r, replacer(r)); ok {
		if _, signedIn := requestSession(r, h.sessions, ff); signedIn {
			dest := h.PathPrefix + "/"
			if ret != "" {
				dest += "?return=" + url.QueryEscape(ret)
			}
			http.Redirect(w, r, dest, http.StatusSeeOther)
			return nil
		}
	}
	return h.pages.render(w, r, &view{Step: stepSignedOut, Redirect: orRoot(ret)})
}
