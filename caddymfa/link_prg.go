package caddymfa

import "net/http"

// The link page's form ends in a 303 when refused, like the sign-in's: a
// link that is wrong, used up or expired, opened where it may not be, or
// a page expired sends the browser to GET /link, which says so once
// through the notice cookie (flash.go); a reload posts nothing. The
// redirect never carries the token (SECURITY.md K52): the notice holds
// only the message. JSON clients get the answer itself.

// flashLink names the link page for the notice cookie.
const flashLink = "link"

// linkBinding binds a notice to the flow of the browser, if it has one:
// a link may be opened in a browser with none.
func (h *Handler) linkBinding(r *http.Request) string {
	if ff, ok := h.firstFactor(r, replacer(r)); ok {
		if fl := h.flows.read(r, ff); fl != nil {
			return fl.ID
		}
	}
	return ""
}

// linkRefused answers the link form whose result is the error v: JSON
// clients get v; browsers a 303 to GET /link, which shows v once.
func (h *Handler) linkRefused(w http.ResponseWriter, r *http.Request, v *view) error {
	return h.redirectWithError(w, r, v, h.PathPrefix+"/link", flashLink, h.linkBinding(r))
}

// linkPage answers GET /link: the page that posts the link's token, or,
// right after a refused form, the refusal, once.
func (h *Handler) linkPage(w http.ResponseWriter, r *http.Request) error {
	v := &view{Step: stepLinkOpen}
	if f := h.readFlash(w, r, flashLink, h.linkBinding(r)); f != nil {
		v = &view{}
		h.applyFlash(v, f)
	}
	return h.pages.render(w, r, v)
}
