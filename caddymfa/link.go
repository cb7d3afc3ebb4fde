package caddymfa

import (
	"context"
	"crypto/hmac"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/storage"
)

// Steps of link mode, as named in the HTTP contract.
const (
	stepLinkSent      = "link_sent"      // a link is out; the page waits for it
	stepLinkConfirm   = "link_confirm"   // GET /link: the confirm button
	stepLinkConfirmed = "link_confirmed" // confirmed on another device
)

// errCodeInvalidLink is the one answer to a link that is wrong, expired,
// used, out of attempts, or whose user is locked.
const errCodeInvalidLink = "invalid_link"

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
	return mac(k.code, "link", challengeID, token)
}

// linkURL is the link a message carries: base_url, path_prefix, /link and
// the token; never built from the request's Host or X-Forwarded-* (link
// mode needs base_url). "" for no token.
func (h *Handler) linkURL(token string) string {
	if token == "" || h.baseURL == nil {
		return ""
	}
	u := *h.baseURL
	u.RawQuery, u.Fragment = "", ""
	return strings.TrimRight(u.String(), "/") + h.PathPrefix + "/link?token=" + token
}

// linkTTL is the lifetime of the links of a method in link mode, and 0
// for a method that sends codes.
func (h *Handler) linkTTL(method string) time.Duration {
	var ttl, def time.Duration
	switch {
	case method == methodEmail && h.Email != nil && h.Email.Send == email.SendLink:
		ttl, def = time.Duration(h.Email.LinkTTL), email.DefaultLinkTTL
	case method == methodSMS && h.SMS != nil && h.SMS.Send == sms.SendLink:
		ttl, def = time.Duration(h.SMS.LinkTTL), sms.DefaultLinkTTL
	default:
		return 0
	}
	if ttl <= 0 {
		return def
	}
	return ttl
}

// linkMethods are the configured methods in link mode.
func (h *Handler) linkMethods() []string {
	var out []string
	for _, ch := range h.channels() {
		if h.linkTTL(ch.method) > 0 {
			out = append(out, ch.method)
		}
	}
	return out
}

// checkLinkMode refuses link mode without base_url (SECURITY.md J43): the
// links in messages are built from it, and taking the request's Host
// instead would let anyone who can start a sign-in send a victim a link
// to a site of their choosing.
func (h *Handler) checkLinkMode() error {
	var method string
	switch {
	case h.baseURL != nil:
		return nil
	case h.Email != nil && h.Email.Send == email.SendLink:
		method = methodEmail
	case h.SMS != nil && h.SMS.Send == sms.SendLink:
		method = methodSMS
	default:
		return nil
	}
	return fmt.Errorf("%s: send link needs base_url, the site's external URL (e.g. https://app.example.com): the links in messages are built from it, never from the request's Host or X-Forwarded-* headers", method)
}

// serveLink serves the landing page of a link (GET) and its confirmation
// (POST). Neither needs the first factor: the token is what authenticates,
// and the page may be opened on another device.
func (h *Handler) serveLink(w http.ResponseWriter, r *http.Request) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return h.showLink(w, r)
	case http.MethodPost:
		return h.confirmLink(w, r)
	}
	return h.methodNotAllowed(w, "GET, HEAD, POST")
}

// showLink shows a button that confirms the link. It changes nothing and
// looks nothing up, so mail scanners that fetch links sign nobody in, and
// it cannot tell a valid token from a wrong one. The token stays on this
// page: no third-party resources, Referrer-Policy no-referrer, and the
// request is left out of the access log, whose URL would carry it.
func (h *Handler) showLink(w http.ResponseWriter, r *http.Request) error {
	caddyhttp.SetVar(r.Context(), caddyhttp.LogSkipVar, true)
	token := r.URL.Query().Get("token")
	if _, ok := linkChallenge(token); !ok {
		return h.render(w, r, h.errorView(http.StatusBadRequest, errCodeInvalidLink, msgInvalidLink))
	}
	return h.render(w, r, &view{Step: stepLinkConfirm, CSRFToken: h.keys.csrfToken("l:" + token), linkToken: token})
}

// confirmLink consumes a link token. Opened in the browser that started
// the sign-in, it signs in; opened elsewhere, it marks the challenge
// verified, and the browser that started picks the sign-in up on its next
// GET / or GET /status. The CSRF token is bound to the link token, since
// the browser that confirms may have no flow cookie.
func (h *Handler) confirmLink(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	f, formErr := readForm(r)
	if !h.sameOrigin(r) {
		return h.render(w, r, h.errorView(http.StatusForbidden, errCodeCSRF, "This form was sent from another site."))
	}
	if formErr != nil {
		return h.unreadable(w, r, "", "link", formErr)
	}
	if !h.keys.validCSRF("l:"+f.Token, f.CSRFToken) {
		return h.render(w, r, h.errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Open the link again."))
	}
	cid, ok := linkChallenge(f.Token)
	if !ok {
		h.metrics.verified(methodOther, false)
		return h.render(w, r, h.errorView(http.StatusUnauthorized, errCodeInvalidLink, msgInvalidLink))
	}
	flow := h.linkFlow(r, cid)
	out, err := h.verifyLink(r.Context(), cid, f.Token, flow != nil)
	if err != nil {
		return h.unavailable(w, r, "verifying link", err)
	}
	if !out.ok {
		if out.user != "" {
			h.audit(r.Context(), "sign-in failed", zap.String("user", out.user), zap.String("method", out.method), zap.Bool("link", true))
		}
		return h.render(w, r, h.errorView(http.StatusUnauthorized, errCodeInvalidLink, msgInvalidLink))
	}
	if flow != nil {
		return h.signedIn(w, r, flow, out.method)
	}
	h.audit(r.Context(), "sign-in confirmed by link", zap.String("user", out.user), zap.String("method", out.method))
	return h.render(w, r, &view{Step: stepLinkConfirmed, Method: out.method})
}

// linkFlow returns the request's flow when it is the one the challenge
// cid belongs to: the link was opened in the browser that asked for it.
func (h *Handler) linkFlow(r *http.Request, cid string) *flowState {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if repl == nil {
		return nil
	}
	ff, ok := h.firstFactor(r, repl)
	if !ok {
		return nil
	}
	flow := h.readFlow(r, ff)
	if flow == nil || h.challengeID(flow.ID) != cid {
		return nil
	}
	return flow
}

// linkOutcome is what a link confirmation came to.
type linkOutcome struct {
	ok           bool
	user, method string // of the challenge the token names, if any
}

// verifyLink checks a link token against the challenge it names. As in
// verifyFactor, the attempt counts in the user's lockout first (SECURITY.md
// J46) and a locked user's token is never compared (A4); as in
// verifyChallenge, the challenge's attempt count moves before the compare,
// in the same atomic store operation that consumes the token, so a token
// works once however often it is sent (A1-A3). here says the request comes
// from the flow's own browser: the challenge is then used at once;
// otherwise it becomes verified, for that browser to pick up.
func (h *Handler) verifyLink(ctx context.Context, cid, token string, here bool) (linkOutcome, error) {
	key := keyChallenge + cid
	rec, err := h.store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		h.metrics.verified(methodOther, false)
		return linkOutcome{}, nil
	}
	if err != nil {
		return linkOutcome{}, err
	}
	named, err := decodeRecord[challenge](rec.Value)
	if err != nil {
		return linkOutcome{}, err
	}
	out := linkOutcome{user: named.User, method: named.Method}
	if out.user == "" {
		h.metrics.verified(methodOther, false)
		return linkOutcome{}, nil
	}
	locked, err := h.countFailure(ctx, out.user)
	if err != nil {
		return linkOutcome{}, err
	}
	limits := h.limitsFor(out.method)
	now := h.now()
	err = h.store.Update(ctx, key, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		out.ok = false
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		ch, err := decodeRecord[challenge](cur.Value)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		if ch.State != statePending || ch.LinkMAC == nil {
			return nil, time.Time{}, storage.Keep, nil
		}
		ch.Attempts++
		if ch.Attempts >= limits.MaxAttempts {
			ch.State = stateDead
		}
		match := !locked && ch.User == out.user && now.Before(ch.ExpiresAt) && ch.Attempts <= limits.MaxAttempts &&
			hmac.Equal(ch.LinkMAC, h.keys.linkMAC(cid, token))
		expires := cur.ExpiresAt
		if match {
			out.ok = true
			ch.State = stateUsed
			if !here {
				ch.State = stateVerified
				ch.ExpiresAt = now.Add(linkPickup)
				if ch.KeepUntil.Before(ch.ExpiresAt) {
					ch.KeepUntil = ch.ExpiresAt
				}
				if expires.Before(ch.KeepUntil) {
					expires = ch.KeepUntil
				}
			}
		}
		b, err := encodeRecord(ch)
		return b, expires, storage.Write, err
	})
	if err != nil {
		return linkOutcome{}, fmt.Errorf("counting link attempt: %w", err)
	}
	h.metrics.verified(out.method, out.ok)
	if out.ok {
		if err := h.clearFailures(ctx, out.user); err != nil {
			return linkOutcome{}, fmt.Errorf("clearing failures: %w", err)
		}
	}
	return out, nil
}

// pickUpLink turns the flow's challenge from verified (its link was
// confirmed on another device) to used, once, and returns its method. A
// user locked meanwhile does not pick it up: the challenge dies.
func (h *Handler) pickUpLink(ctx context.Context, flow *flowState) (string, bool, error) {
	user := flow.user()
	if user == "" {
		return "", false, nil
	}
	locked, err := h.lockedNow(ctx, user)
	if err != nil {
		return "", false, err
	}
	now := h.now()
	var method string
	err = h.store.Update(ctx, keyChallenge+h.challengeID(flow.ID), func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		method = ""
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		ch, err := decodeRecord[challenge](cur.Value)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		if ch.State != stateVerified || ch.User != user || !now.Before(ch.ExpiresAt) {
			return nil, time.Time{}, storage.Keep, nil
		}
		ch.State = stateUsed
		if locked {
			ch.State = stateDead
		} else {
			method = ch.Method
		}
		b, err := encodeRecord(ch)
		return b, cur.ExpiresAt, storage.Write, err
	})
	if err != nil {
		return "", false, fmt.Errorf("picking up linked sign-in: %w", err)
	}
	return method, method != "", nil
}

// lockedNow reports whether the user is locked out, without counting an
// attempt.
func (h *Handler) lockedNow(ctx context.Context, user string) (bool, error) {
	rec, err := h.store.Get(ctx, keyLockout+user)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading lockout: %w", err)
	}
	lr, err := decodeRecord[lockRecord](rec.Value)
	if err != nil {
		return false, err
	}
	return h.now().Before(lr.LockedUntil), nil
}

// pickUpLinkSignIn signs in the browser of a flow whose link was
// confirmed on another device, and reports whether it answered.
func (h *Handler) pickUpLinkSignIn(w http.ResponseWriter, r *http.Request, flow *flowState) (bool, error) {
	method, ok, err := h.pickUpLink(r.Context(), flow)
	if err != nil {
		return true, h.unavailable(w, r, "completing sign-in", err)
	}
	if !ok {
		return false, nil
	}
	return true, h.signedIn(w, r, flow, method)
}

// signedIn starts the session of a flow whose link was verified and sends
// the browser on: a 303 to where it goes next, or the done step in JSON.
func (h *Handler) signedIn(w http.ResponseWriter, r *http.Request, flow *flowState, method string) error {
	dest, err := h.startSession(w, r, flow, method, false)
	if err != nil {
		return h.unavailable(w, r, "storing session", err)
	}
	if wantsJSON(r) {
		return h.render(w, r, &view{Step: stepDone, User: flow.user(), Method: method, Redirect: dest})
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
		return h.methodNotAllowed(w, "GET, HEAD")
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	ff, ok := h.firstFactor(r, repl)
	if !ok {
		return writeJSON(w, http.StatusUnauthorized, h.errorView(http.StatusUnauthorized, errCodeNoUser, "Sign in with your first factor first."))
	}
	if _, ok := h.validSession(r, ff); ok {
		return writeJSON(w, http.StatusOK, statusAnswer{Status: statusVerified, Redirect: "/"})
	}
	flow := h.readFlow(r, ff)
	if flow == nil {
		return writeJSON(w, http.StatusOK, statusAnswer{Status: statusExpired})
	}
	if r.Method == http.MethodGet {
		method, ok, err := h.pickUpLink(r.Context(), flow)
		if err != nil {
			return h.unavailable(w, r, "completing sign-in", err)
		}
		if ok {
			dest, err := h.startSession(w, r, flow, method, false)
			if err != nil {
				return h.unavailable(w, r, "storing session", err)
			}
			return writeJSON(w, http.StatusOK, statusAnswer{Status: statusVerified, Redirect: dest})
		}
	}
	ch, err := h.loadChallenge(r, flow)
	if err != nil {
		return h.unavailable(w, r, "reading challenge", err)
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
