package caddymfa

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

// Steps of the flow, as named in the HTTP contract.
const (
	stepIdentify = "identify"
	stepChoose   = "choose"
	stepVerify   = "verify"
	stepDone     = "done"
)

// Stable error codes of the HTTP contract.
const (
	errCodeInvalid   = "invalid_code"
	errCodeThrottled = "throttled"
	errCodeCSRF      = "csrf"
	errCodeRequest   = "bad_request"
	errCodeDelivery  = "delivery_failed"
	errCodeUnavail   = "unavailable"
	errCodeNoMethod  = "no_method"
	errCodeNoUser    = "no_user"
)

// msgNoMethod tells a user with no second factor on file what to do.
const msgNoMethod = "No second factor is set up for your account. Contact the administrator."

// view is what a page or JSON answer shows.
type view struct {
	Step         string   `json:"step"`
	Methods      []string `json:"methods,omitempty"`
	Method       string   `json:"method,omitempty"`
	Destination  string   `json:"destination,omitempty"`
	ExpiresIn    int      `json:"expires_in,omitempty"`
	AttemptsLeft *int     `json:"attempts_left,omitempty"`
	CSRFToken    string   `json:"csrf_token,omitempty"`
	Redirect     string   `json:"redirect,omitempty"`
	User         string   `json:"user,omitempty"`
	Error        string   `json:"error,omitempty"`
	Message      string   `json:"message,omitempty"`
	CanResend    bool     `json:"can_resend,omitempty"`
	// RetryAfter is, on a refused request, how many seconds to wait
	// before trying again (also in the Retry-After header).
	RetryAfter int `json:"retry_after,omitempty"`
	// Destinations are the masked addresses on file by method, on the
	// choose step of second-factor mode.
	Destinations map[string]string `json:"destinations,omitempty"`
	// Enroll is where to set up an authenticator app, when the user may.
	Enroll string `json:"enroll,omitempty"`
	// Enrollment material: the QR code as a PNG data URI, the secret for
	// typing in, grouped, and the otpauth URI they both carry.
	QRCode     string `json:"qr_png,omitempty"`
	Secret     string `json:"secret,omitempty"`
	OTPAuthURI string `json:"otpauth_uri,omitempty"`
	// NeedsCurrent asks for a code of the factor the user has now.
	NeedsCurrent bool `json:"needs_current_code,omitempty"`
	// RecoveryCodes are shown once, right after they are made.
	RecoveryCodes []string `json:"recovery_codes,omitempty"`
	// RecoveryLeft is how many unused recovery codes the user has.
	RecoveryLeft *int `json:"recovery_codes_left,omitempty"`
	// RecoveryUsed says, on the app settings, that this session was
	// signed in with a recovery code: the page explains it and offers a
	// new app, new codes, or the site.
	RecoveryUsed bool `json:"recovery_code_used,omitempty"`
	// AppAdded is when the user's authenticator app was set up.
	AppAdded string `json:"totp_added,omitempty"`
	// Return is where the browser goes after an enrollment page.
	Return string `json:"return,omitempty"`
	// Continue is the next page of a registration.
	Continue string `json:"continue,omitempty"`
	// Register links to adding or changing an address, by kind ("phone",
	// "email"), on the steps of a sign-in (registration during_login).
	Register map[string]string `json:"register,omitempty"`
	// Skip lets the user leave enrollment for later.
	Skip bool `json:"can_skip,omitempty"`
	// RememberDays offers "remember this device" for that many days
	// (remember_device); send remember=true with the code.
	RememberDays int `json:"remember_device_days,omitempty"`
	// LinkMethods are the methods that send a sign-in link instead of a
	// code (send link).
	LinkMethods []string `json:"link_methods,omitempty"`
	// MatchNumber is, on the page waiting for a link, the number to pick
	// where the link is opened on another device; Numbers are the
	// choices of that device's confirm page, and Origin where and when
	// the sign-in began (SECURITY.md L57).
	MatchNumber int   `json:"match_number,omitempty"`
	Numbers     []int `json:"numbers,omitempty"`
	// SentAt is when the code on the page was sent, when it is one of an
	// earlier sign-in that is reused (RFC 3339).
	SentAt string      `json:"sent_at,omitempty"`
	Origin *linkOrigin `json:"origin,omitempty"`
	// Passkeys are the user's passkeys, on the passkey page.
	Passkeys []passkeyInfo `json:"passkeys,omitempty"`
	// Passwordless offers "Sign in with a passkey" on the identify step.
	Passwordless bool `json:"passwordless,omitempty"`
	// PasskeyPage is where the user adds and manages passkeys.
	PasskeyPage string `json:"passkey_page,omitempty"`

	status     int
	prefix     string
	back       string // a link back from an enrollment page
	retry      time.Duration
	standalone bool
	// typed is, in standalone mode, the name or address this browser
	// typed, shown with a link to change it; "" in a step-up.
	typed     string
	linkToken string // the token of a link page, for its form
	// msgArgs are the placeholders of Message, pairs of name and value
	// (a value that is a message key is said in the user's language).
	msgArgs []string
	lang    *i18n.Lang
	here    string // the page's own address, for the language switcher
}

// pages turns what the flow found out into views and answers: the
// verify step of a challenge, a failed verification, the answer to a
// refused send, and the page or JSON of any view. It reads no state.
type pages struct {
	prefix  string
	methods *methods
	keys    keyring
	logger  *zap.Logger
	// rememberDays offers "remember this device" for that many days
	// (remember_device); 0 is off.
	rememberDays int
	cat          *i18n.Catalog
	brand        *brand
}

func errorView(status int, code, msg string) *view {
	return &view{status: status, Error: code, Message: msg}
}

// offerRemember offers "remember this device" on a verify step of
// second-factor mode.
func (pg *pages) offerRemember(v *view, p principal) {
	if pg.rememberDays > 0 && p.firstFactor != "" {
		v.RememberDays = pg.rememberDays
	}
}

// challenge fills v with the verify step of the flow's code, or the
// waiting step of its link, while it can be used, and reports whether it
// did. A challenge that is over leaves a message for the choose step.
func (pg *pages) challenge(ch *challenge, p principal, now time.Time, v *view) bool {
	if ch == nil {
		return false
	}
	limits := pg.methods.limitsFor(ch.Method)
	link := ch.LinkMAC != nil
	switch {
	case ch.Failed && p.firstFactor != "":
		v.Error, v.Message = errCodeDelivery, pick(link, "The link could not be delivered. Try again later or contact the administrator.", "The code could not be delivered. Try again later or contact the administrator.")
	case ch.State == stateDead && p.firstFactor == "":
		// Standalone: a failed delivery and a used-up code read the
		// same, as known and unknown names must (SECURITY.md H37).
		v.Error, v.Message = errCodeInvalid, pick(link, "That link can't be used. Ask for a new one.", "That code can't be used. Ask for a new one.")
	case (ch.State == statePending || ch.State == stateVerified) && now.Before(ch.ExpiresAt):
		v.Step = stepVerify
		v.Method = ch.Method
		v.Destination = ch.Destination
		if p.firstFactor == "" {
			// Standalone: show only what the visitor typed, never
			// what is on file (that would tell who exists).
			v.Destination = typedAddress(p.user)
		}
		v.ExpiresIn = int(ch.ExpiresAt.Sub(now).Round(time.Second) / time.Second)
		left := max(0, limits.MaxAttempts-ch.Attempts)
		v.AttemptsLeft = &left
		v.CanResend = ch.Sends < limits.MaxSends
		if ch.LinkMAC != nil {
			// No code to type: the page waits for the link.
			v.Step, v.AttemptsLeft = stepLinkSent, nil
			v.MatchNumber = ch.Match
		}
		return true
	case ch.State == stateDead:
		v.Error, v.Message = errCodeInvalid, pick(link, "Too many attempts for this link. Send a new one to try again.", "Too many attempts for this code. Send a new one to try again.")
	case ch.State == statePending || ch.State == stateVerified:
		v.Error, v.Message = "expired", pick(link, "The link has expired. Send a new one.", "The code has expired. Send a new one.")
	}
	return false
}

// pick returns a if cond, else b.
func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// failed answers a failed verification. It shows only what does not
// depend on the challenge's state (the masked address on file, attempts
// left, a resend button while attempts remain), so wrong, expired,
// exhausted, unknown and locked answers stay the same for the same
// attempt count (SECURITY.md A7). dest is the address on file for
// method.
func (pg *pages) failed(flow *flowState, p principal, method, dest string, attemptsLeft int) *view {
	v := errorView(http.StatusUnauthorized, errCodeInvalid, "That code is not valid.")
	v.Step = stepVerify
	v.Method = method
	v.CSRFToken = pg.keys.csrfTokenOf("f:", flow.ID)
	v.standalone = p.firstFactor == ""
	v.typed = flow.typed()
	pg.offerRemember(v, p)
	ch, isChannel := pg.methods.channel(method)
	if !isChannel {
		// Apps and recovery codes have no per-challenge budget; the
		// lockout, which is never revealed, bounds the guesses.
		return v
	}
	v.AttemptsLeft = &attemptsLeft
	v.CanResend = attemptsLeft > 0
	if v.standalone {
		v.Destination = typedAddress(p.user)
	} else if dest != "" {
		v.Destination = ch.sender.Mask(dest)
	}
	if attemptsLeft == 0 {
		v.Message = "That code is not valid, and no attempts are left for it. Send a new code to try again."
	}
	return v
}

// typedAddress shows a standalone user the address they typed, unmasked
// so that a typo can be spotted; names that are not addresses show
// nothing. It comes from the browser's own flow cookie, never from the
// store, so it is the same whether or not the address is known
// (SECURITY.md H37), and it is said only to the browser that typed it.
func typedAddress(user string) string {
	addr, err := email.ParseAddress(user)
	if err != nil {
		return ""
	}
	return addr
}

// sendFailed answers a send that issue refused or could not deliver.
func (pg *pages) sendFailed(w http.ResponseWriter, r *http.Request, err error) error {
	if v := pg.sendRefusal(err); v != nil {
		return pg.render(w, r, v)
	}
	return pg.unavailable(w, r, "issuing code", err)
}

// sendRefusal is the answer to a send that issue refused or could not
// deliver, or nil when the store failed.
func (pg *pages) sendRefusal(err error) *view {
	var te *throttledError
	switch {
	case errors.As(err, &te):
		pg.logger.Info("send throttled", zap.String("scope", te.scope))
		v := errorView(http.StatusTooManyRequests, errCodeThrottled, "Too many codes were requested.")
		v.retry = te.retryAfter
		return v
	case errors.Is(err, errTooManySends):
		v := errorView(http.StatusTooManyRequests, errCodeThrottled, "No more codes can be sent for this sign-in.")
		v.retry = flowTTL
		return v
	case errors.Is(err, errDelivery):
		return errorView(http.StatusBadGateway, errCodeDelivery, "The code could not be delivered. Try again later or contact the administrator.")
	}
	return nil
}

// unavailable answers a request the store could not serve: it is denied
// (fail closed), and the cause is logged.
func (pg *pages) unavailable(w http.ResponseWriter, r *http.Request, doing string, err error) error {
	pg.logger.Error(doing+"; denying", zap.Error(err))
	return pg.render(w, r, errorView(http.StatusServiceUnavailable, errCodeUnavail, "Sign-in is unavailable right now. Try again in a minute."))
}

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	// Both values share one new array, as in setPageHeaders.
	hdr := w.Header()
	vals := make([]string, 2)
	vals[0], vals[1] = "application/json", "no-store"
	hdr["Content-Type"] = vals[0:1:1]
	hdr["Cache-Control"] = vals[1:2:2]
	w.WriteHeader(status)
	if vw, ok := v.(*view); ok && vw.viewJSONFast() {
		return writeViewJSON(w, vw)
	}
	return json.NewEncoder(w).Encode(v)
}

// render answers with JSON or the HTML page.
func (pg *pages) render(w http.ResponseWriter, r *http.Request, v *view) error {
	status := pg.prepare(w, r, v)
	if wantsJSON(r) {
		return writeJSON(w, status, v)
	}
	v.prefix = pg.prefix
	v.here = here(r, pg.prefix)
	return writePage(w, status, v, pg.catalog(), pg.brand)
}

// renderJSON answers with v's JSON whatever the request accepts, said in
// the user's language as render says it (for answers only scripts read,
// such as the link page's poll).
func (pg *pages) renderJSON(w http.ResponseWriter, r *http.Request, v *view) error {
	return writeJSON(w, pg.prepare(w, r, v), v)
}

// prepare readies v for an answer to r: its language, its message in
// that language, and the wait of a refused request (also in the
// Retry-After header). It returns the answer's status.
func (pg *pages) prepare(w http.ResponseWriter, r *http.Request, v *view) int {
	status := v.status
	if status == 0 {
		status = http.StatusOK
	}
	l := pg.requestLang(r)
	v.lang = l
	if v.Message != "" {
		v.Message = localize(l, v.Message, v.msgArgs)
	}
	if v.retry > 0 {
		secs := int((v.retry + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		v.RetryAfter = secs
		if v.Message != "" {
			v.Message += " " + l.T("msg.retry_in", "wait", waitText(l, secs))
		}
	}
	return status
}

// waitText says how long a wait of secs seconds is, as people say it:
// "25 seconds", "1 minute", "14 minutes" (rounded up), "2 hours".
func waitText(l *i18n.Lang, secs int) string {
	switch {
	case secs < 90:
		return l.N("duration.seconds", max(secs, 1))
	case secs < 90*60:
		return l.N("duration.minutes", (secs+59)/60)
	}
	return l.N("duration.hours", (secs+3599)/3600)
}
