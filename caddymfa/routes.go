package caddymfa

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// serveFlow serves the endpoints under PathPrefix. A path no endpoint
// has, or a method an endpoint does not take, answers a page that leads
// back to the sign-in.
func (h *Handler) serveFlow(w http.ResponseWriter, r *http.Request) error {
	setPageHeaders(w)
	if h.passkeys != nil {
		w.Header().Set("Content-Security-Policy", passkeyCSP)
	}
	clientIP(r) // decided once, so audit lines carry the same address
	if err := h.route(w, r); err != nil {
		return h.refusalPage(w, r, err)
	}
	return nil
}

func (h *Handler) route(w http.ResponseWriter, r *http.Request) error {
	sub := strings.TrimPrefix(r.URL.Path, h.PathPrefix)
	switch sub {
	case "", "/":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, "GET, HEAD")
		}
		return h.getStep(w, r)
	case "/style.css":
		return h.pages.serveStyle(w, r)
	case "/logo":
		return h.serveLogo(w, r)
	case "/link.js":
		return serveLinkJS(w, r)
	case "/codes.js":
		return serveCodesJS(w, r)
	case "/enroll/totp":
		return h.serveEnroll(w, r)
	case "/register/phone", "/register/email":
		return h.serveRegister(w, r, strings.TrimPrefix(sub, "/register/"))
	case "/link":
		return h.serveLink(w, r)
	case accountPath, accountConfirmPath:
		return h.serveAccount(w, r, sub)
	case "/status":
		return h.serveStatus(w, r)
	case "/passkey.js", "/passkey/register", "/passkey/login", "/passkey/rename", "/passkey/remove":
		return h.servePasskey(w, r, sub)
	case "/language":
		return h.serveLanguage(w, r)
	case signedOutPath:
		return h.serveSignedOut(w, r)
	case "/identify", "/send", "/resend", "/verify", "/logout":
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			return h.backToFlow(w, r)
		}
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, "POST")
		}
		return h.post(w, r, sub[1:])
	}
	return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("no mfa endpoint %s", sub))
}

func methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("method not allowed"))
}
