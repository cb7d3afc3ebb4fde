package caddymfa

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// Steps of link mode, as named in the HTTP contract.
const (
	stepLinkSent      = "link_sent"      // a link is out; the page waits for it
	stepLinkOpen      = "link_open"      // GET /link: reads the token from the fragment and posts it
	stepLinkConfirm   = "link_confirm"   // POST /link with a token: the confirm button
	stepLinkConfirmed = "link_confirmed" // confirmed on another device
)

// errCodeInvalidLink is the one answer to a link that is wrong, expired,
// used, out of attempts, or whose user is locked.
const errCodeInvalidLink = "invalid_link"

// errCodeLinkElsewhere answers a standalone link opened in another
// browser without link_cross_device.
const errCodeLinkElsewhere = "link_other_browser"

const msgLinkElsewhere = "Open this link in the browser where you started signing in."

const msgInvalidLink = "This link is not valid: it may have expired or been used already. Go back to the sign-in page and send a new one."

// Answers of GET /status.
const (
	statusPending  = "pending"
	statusVerified = "verified"
	statusExpired  = "expired"
)

// linkPickup is how long the browser that started a sign-in has to pick
// it up after its link was confirmed on another device.
const linkPickup = 5 * time.Minute

// A link token is the challenge ID (20 bytes, so that a wrong token is
// counted against the challenge and its user) followed by 256 random bits,
// base64url encoded: 70 characters.
const (
	challengeIDLen = 20
	linkSecretLen  = 32
)

var linkTokenLen = base64.RawURLEncoding.EncodedLen(challengeIDLen + linkSecretLen)

// newLinkToken returns a new token for the challenge challengeID (as
// challengeID makes it: hex).
func newLinkToken(challengeID string) (string, error) {
	id, err := hex.DecodeString(challengeID)
	if err != nil || len(id) != challengeIDLen {
		return "", errors.New("malformed challenge id")
	}
	b := make([]byte, challengeIDLen+linkSecretLen)
	copy(b, id)
	if _, err := randRead(b[challengeIDLen:]); err != nil {
		return "", fmt.Errorf("reading random link token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// linkChallenge returns the challenge ID a well-formed token names.
func linkChallenge(token string) (string, bool) {
	if len(token) != linkTokenLen {
		return "", false
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(token)
	if err != nil || len(b) != challengeIDLen+linkSecretLen {
		return "", false
	}
	return hex.EncodeToString(b[:challengeIDLen]), true
}

// linkMAC is what the store keeps instead of a link token, bound to its
// challenge like codeMAC.
func (k keyring) linkMAC(challengeID, token string) []byte {
	return k.codeMACs.sum(nil, "link", challengeID, token)
}

// serveLink serves the landing page of a link (GET) and its confirmation
// (POST). Neither needs the first factor: the token is what authenticates,
// and the page may be opened on another device.
//
// A link carries its token in the URL fragment (methods.linkURL), which
// the browser keeps to itself, so no access log ever sees it, even when a
// first factor answers /link before mfa runs (SECURITY.md K52). The
// landing page is the same for every link: its script (link.js, served
// from our own assets under the page's CSP) posts the fragment, and
// without scripts the user pastes the link into its form. Either way the
// token travels in a POST body, which no log records.
func (h *Handler) serveLink(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		// Links of earlier releases carried the token in the query;
		// keep such a URL out of the access log at least when mfa
		// answers it.
		caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
		return h.linkPage(w, r)
	case http.MethodPost:
		return h.confirmLink(w, r)
	}
	return methodNotAllowed(w, "GET, HEAD, POST")
}

// linkTokenFrom reads a link token from what the link page posts: the
// token itself, or the whole link pasted (the token is its fragment, or
// its token= query parameter in links of earlier releases).
func linkTokenFrom(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '#'); i >= 0 {
		s = s[i+1:]
	} else if i := strings.LastIndex(s, "token="); i >= 0 {
		s = s[i+len("token="):]
	}
	return strings.TrimSpace(s)
}

// openLink answers the landing page's post of a token: the page with the
// button that confirms the link. It changes nothing and looks nothing up,
// so mail scanners that fetch links and run their scripts sign nobody in,
// and it cannot tell a valid token from a wrong one.
//
// Opened in another browser, the page also shows where and when the
// sign-in began and the numbers to pick from (SECURITY.md L57); for that
// it reads the challenge (crossDeviceView).
func (h *Handler) openLink(w http.ResponseWriter, r *http.Request, token string) error {
	cid, ok := linkChallenge(token)
	if !ok {
		return h.linkRefused(w, r, errorView(http.StatusBadRequest, errCodeInvalidLink, msgInvalidLink))
	}
	v := &view{Step: stepLinkConfirm, CSRFToken: h.keys.csrfToken("l:" + token), linkToken: token}
	if h.linkFlow(r, cid) == nil {
		if !h.crossDeviceAllowed() {
			return h.linkRefused(w, r, errorView(http.StatusForbidden, errCodeLinkElsewhere, msgLinkElsewhere))
		}
		if err := h.crossDeviceView(r, token, v); err != nil {
			return h.pages.unavailable(w, r, "reading link", err)
		}
	}
	return h.pages.render(w, r, v)
}

// linkFlow returns the request's flow when it is the one the challenge
// cid belongs to: the link was opened in the browser that asked for it.
func (h *Handler) linkFlow(r *http.Request, cid string) *flowState {
	if ff, ok := h.firstFactor(r, replacer(r)); ok {
		if fl := h.flows.read(r, ff); fl != nil && h.challenges.id(fl.slot()) == cid {
			return fl
		}
	}
	return nil
}

// crossDeviceAllowed reports whether a link may be confirmed in a browser
// other than the one that asked: always with a first factor, only with
// link_cross_device in standalone mode (SECURITY.md L57).
func (h *Handler) crossDeviceAllowed() bool {
	return !h.standalone() || h.LinkCrossDevice
}

// confirmLink consumes a link token. Opened in the browser that started
// the sign-in, it signs in; opened elsewhere, it marks the challenge
// verified, and the browser that started picks the sign-in up on its next
// GET / or GET /status. The CSRF token is bound to the link token, since
// the browser that confirms may have no flow cookie.
func (h *Handler) confirmLink(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	f, formErr := readForm(r)
	if !sameOrigin(r, h.baseURL) {
		return h.pages.render(w, r, errorView(http.StatusForbidden, errCodeCSRF, "This form was sent from another site."))
	}
	if formErr != nil {
		return h.unreadable(w, r, "", "link", formErr)
	}
	f.Token = linkTokenFrom(f.Token)
	if f.CSRFToken == "" {
		return h.openLink(w, r, f.Token)
	}
	if !h.keys.validCSRF("l:"+f.Token, f.CSRFToken) {
		return h.linkRefused(w, r, errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Open the link again."))
	}
	cid, ok := linkChallenge(f.Token)
	if !ok {
		h.metrics.verified(methodOther, false)
		return h.linkRefused(w, r, errorView(http.StatusUnauthorized, errCodeInvalidLink, msgInvalidLink))
	}
	flow := h.linkFlow(r, cid)
	if flow == nil && !h.crossDeviceAllowed() {
		return h.linkRefused(w, r, errorView(http.StatusForbidden, errCodeLinkElsewhere, msgLinkElsewhere))
	}
	pick, _ := strconv.Atoi(strings.TrimSpace(f.Number))
	out, err := h.verifier.link(r.Context(), cid, f.Token, h.guessNetwork(r), pick, flow != nil)
	if err != nil {
		return h.pages.unavailable(w, r, "verifying link", err)
	}
	if out.repeat {
		if flow != nil {
			return h.alreadySignedIn(w, r, orRoot(flow.Return))
		}
		return h.pages.render(w, r, &view{Step: stepLinkConfirmed, Method: out.method})
	}
	if !out.ok {
		if out.user != "" {
			h.audit.event(r.Context(), "sign-in failed", userField(out.user), zap.String("method", out.method), zap.Bool("link", true))
		}
		return h.linkRefused(w, r, errorView(http.StatusUnauthorized, errCodeInvalidLink, msgInvalidLink))
	}
	if flow != nil {
		return h.signedIn(w, r, flow, out.method)
	}
	h.audit.event(r.Context(), "sign-in confirmed by link", userField(out.user), zap.String("method", out.method))
	return h.pages.render(w, r, &view{Step: stepLinkConfirmed, Method: out.method})
}

// signedIn starts the session of a flow whose link was verified and sends
// the browser on: a 303 to where it goes next, or the done step in JSON.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request, flow *flowState, method string) error {
	dest, err := h.startSession(w, r, flow, method, false)
	if err != nil {
		return h.pages.unavailable(w, r, "storing session", err)
	}
	if wantsJSON(r) {
		return h.pages.render(w, r, &view{Step: stepDone, User: flow.user(), Method: method, Redirect: dest})
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
	return nil
}

// statusAnswer is the JSON of GET /status.
type statusAnswer struct {
	// Status is pending (a code or link is out and can still be used),
	// verified (signed in: go to Redirect) or expired (nothing to wait
	// for: GET / says why).
	Status    string `json:"status"`
	ExpiresIn int    `json:"expires_in,omitempty"`
	Redirect  string `json:"redirect,omitempty"`
}

// serveStatus answers the waiting page's poll, always in JSON. When the
// flow's link was confirmed on another device, this request signs the
// browser in, as GET / would.
func (h *Handler) serveStatus(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD")
	}
	ff, ok := h.firstFactor(r, replacer(r))
	if !ok {
		return h.pages.renderJSON(w, r, errorView(http.StatusUnauthorized, errCodeNoUser, "Sign in with your first factor first."))
	}
	if _, ok := h.pageSession(r, ff); ok {
		return writeJSON(w, http.StatusOK, statusAnswer{Status: statusVerified, Redirect: "/"})
	}
	flow := h.flows.read(r, ff)
	if flow == nil {
		return writeJSON(w, http.StatusOK, statusAnswer{Status: statusExpired})
	}
	if r.Method == http.MethodGet && len(h.methods.linkMethods()) > 0 {
		method, ok, err := h.verifier.pickUp(r.Context(), flow.principal(), h.guessNetwork(r), flow.slot())
		if err != nil {
			return h.pages.unavailable(w, r, "completing sign-in", err)
		}
		if ok {
			dest, err := h.startSession(w, r, flow, method, false)
			if err != nil {
				return h.pages.unavailable(w, r, "storing session", err)
			}
			return writeJSON(w, http.StatusOK, statusAnswer{Status: statusVerified, Redirect: dest})
		}
	}
	ch, err := h.challenges.load(r.Context(), h.challenges.id(flow.slot()))
	if err != nil {
		return h.pages.unavailable(w, r, "reading challenge", err)
	}
	now := h.now()
	switch {
	case ch == nil || ch.Failed || !now.Before(ch.ExpiresAt):
	case ch.State == statePending:
		return writeJSON(w, http.StatusOK, statusAnswer{Status: statusPending, ExpiresIn: int(ch.ExpiresAt.Sub(now).Round(time.Second) / time.Second)})
	case ch.State == stateVerified:
		return writeJSON(w, http.StatusOK, statusAnswer{Status: statusVerified})
	}
	return writeJSON(w, http.StatusOK, statusAnswer{Status: statusExpired})
}

// ByLink reports whether a method sends a sign-in link instead of a code.
func (p pageData) ByLink(method string) bool { return slices.Contains(p.LinkMethods, method) }

// LinkToken is the token of a link page, for its form.
func (p pageData) LinkToken() string { return p.linkToken }
