package caddymfa

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Error codes of the pages that answer a request no endpoint takes.
const (
	errCodeNotFound = "not_found"
	errCodeMethod   = "method_not_allowed"
)

// backToFlow answers a GET or HEAD on a path that only takes POST (a
// reload after a form was sent, a bookmark): 303 to the current step,
// keeping the return path, instead of a dead end.
func (h *Handler) backToFlow(w http.ResponseWriter, r *http.Request) error {
	dest := h.PathPrefix + "/"
	if ret, ok := h.realm.safeReturn(r.URL.Query().Get("return"), h.PathPrefix); ok && ret != "" {
		dest += "?return=" + url.QueryEscape(ret)
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
	return nil
}

// refusalPage renders the 404 and 405 answers of the endpoints under
// PathPrefix as a page (or JSON) that leads back to the sign-in, in place
// of the empty answer Caddy would give. Other errors pass through.
func (h *Handler) refusalPage(w http.ResponseWriter, r *http.Request, err error) error {
	var he caddyhttp.HandlerError
	if !errors.As(err, &he) {
		return err
	}
	switch he.StatusCode {
	case http.StatusNotFound:
		v := errorView(http.StatusNotFound, errCodeNotFound, "There is no sign-in page at this address.")
		v.Redirect = h.PathPrefix + "/"
		return h.pages.render(w, r, v)
	case http.StatusMethodNotAllowed:
		v := errorView(http.StatusMethodNotAllowed, errCodeMethod, "This page cannot be used that way.")
		v.Redirect = h.PathPrefix + "/"
		return h.pages.render(w, r, v)
	}
	return err
}
