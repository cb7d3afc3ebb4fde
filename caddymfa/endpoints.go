package caddymfa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/storage"
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

	status     int
	prefix     string
	back       string // a link back from an enrollment page
	retry      time.Duration
	standalone bool
	linkToken  string // the token of a link page, for its form
}

// serveFlow serves the endpoints under PathPrefix.
func (h *Handler) serveFlow(w http.ResponseWriter, r *http.Request) error {
	setPageHeaders(w)
	sub := strings.TrimPrefix(r.URL.Path, h.PathPrefix)
	switch sub {
	case "", "/":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return h.methodNotAllowed(w, "GET, HEAD")
		}
		return h.getStep(w, r)
	case "/style.css":
		return serveStyle(w, r)
	case "/enroll/totp":
		return h.serveEnroll(w, r)
	case "/register/phone", "/register/email":
		return h.serveRegister(w, r, strings.TrimPrefix(sub, "/register/"))
	case "/link":
		return h.serveLink(w, r)
	case "/status":
		return h.serveStatus(w, r)
	case "/identify", "/send", "/resend", "/verify", "/logout":
		if r.Method != http.MethodPost {
			return h.methodNotAllowed(w, "POST")
		}
		return h.post(w, r, sub[1:])
	}
	return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("no mfa endpoint %s", sub))
}

func (h *Handler) methodNotAllowed(w http.ResponseWriter, allow string) error {
	w.Header().Set("Allow", allow)
	return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("method not allowed"))
}

// getStep shows where the flow stands. It never sends a message and never
// changes server state; it may start a flow cookie.
func (h *Handler) getStep(w http.ResponseWriter, r *http.Request) error {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	ff, ok := h.firstFactor(r, repl)
	if !ok {
		return h.render(w, r, h.errorView(http.StatusUnauthorized, errCodeNoUser, "Sign in with your first factor first."))
	}
	if s, ok := h.validSession(r, ff); ok {
		id, _ := h.sessionIDFromCookie(readCookie(r, cookieName(r, sessionCookieName)))
		v := &view{Step: stepDone, User: s.User, Method: s.Method, CSRFToken: h.keys.csrfToken("s:" + id)}
		if h.TOTP != nil {
			v.Enroll = h.PathPrefix + "/enroll/totp"
		}
		return h.render(w, r, v)
	}
	flow := h.readFlow(r, ff)
	ret, _ := safeReturnPath(r.URL.Query().Get("return"), h.PathPrefix)
	if flow == nil || (ret != "" && ret != flow.Return) {
		if flow == nil {
			var err error
			if flow, err = h.newFlow(ff, "", ret); err != nil {
				return err
			}
		} else {
			// Another protected page sent the browser here: keep the
			// flow (and a code already sent), change only where it ends.
			flow.Return = ret
		}
		c, err := h.flowCookie(r, flow)
		if err != nil {
			return err
		}
		http.SetCookie(w, c)
	}
	if r.Method == http.MethodGet {
		// A link confirmed on another device: this GET signs in.
		if done, err := h.pickUpLinkSignIn(w, r, flow); done || err != nil {
			return err
		}
	}
	v, err := h.stepView(r, flow)
	if err != nil {
		return h.unavailable(w, r, "reading flow state", err)
	}
	return h.render(w, r, v)
}

// stepView works out the current step of a flow. The "method" query
// parameter picks a method without sending anything: "totp" or
// "recovery" show their code form, "choose" the method list even while
// a code is pending.
func (h *Handler) stepView(r *http.Request, flow *flowState) (*view, error) {
	v := &view{CSRFToken: h.keys.csrfToken("f:" + flow.ID), standalone: flow.FirstFactor == "", LinkMethods: h.linkMethods()}
	if flow.user() == "" {
		v.Step = stepIdentify
		return v, nil
	}
	v.User = flow.user()
	opts, err := h.optionsFor(r, flow)
	if err != nil {
		return nil, err
	}
	if flow.FirstFactor != "" {
		v.Register = h.registerLinks(flow.Return)
	}
	want := r.URL.Query().Get("method")
	h.offerRemember(v, flow)
	if (want == methodTOTP || want == methodRecovery) && slices.Contains(opts.methods, want) {
		v.Step, v.Method, v.Methods = stepVerify, want, opts.methods
		return v, nil
	}
	if want != stepChoose && len(h.channels()) > 0 {
		done, err := h.challengeView(r, flow, v)
		if err != nil || done {
			return v, err
		}
	}
	v.RememberDays = 0
	v.Step = stepChoose
	v.Methods = opts.methods
	if len(v.Methods) > 0 {
		v.Method = v.Methods[0] // the preselected one
	}
	if opts.enroll {
		v.Enroll = h.PathPrefix + "/enroll/totp"
	}
	if len(v.Methods) == 0 && !opts.enroll {
		v.Error, v.Message = errCodeNoMethod, msgNoMethod
		v.status = http.StatusForbidden
	}
	if flow.FirstFactor == "" {
		if slices.Contains(v.Methods, methodEmail) {
			v.Destination = h.maskedIdentity(flow.User)
		}
		return v, nil
	}
	for _, m := range v.Methods {
		if ch, ok := h.channel(m); ok {
			if v.Destinations == nil {
				v.Destinations = map[string]string{}
			}
			v.Destinations[m] = ch.sender.Mask(h.destinationFor(r, flow, m))
		}
	}
	v.Destination = v.Destinations[methodEmail]
	return v, nil
}

// offerRemember offers "remember this device" on a verify step.
func (h *Handler) offerRemember(v *view, flow *flowState) {
	if h.RememberDevice > 0 && flow.FirstFactor != "" {
		v.RememberDays = max(1, int(time.Duration(h.RememberDevice)/(24*time.Hour)))
	}
}

// challengeView fills v with the verify step of the flow's code, or the
// waiting step of its link, while it can be used, and reports whether it
// did. A challenge that is over leaves a message for the choose step.
func (h *Handler) challengeView(r *http.Request, flow *flowState, v *view) (bool, error) {
	ch, err := h.loadChallenge(r, flow)
	if err != nil || ch == nil {
		return false, err
	}
	limits := h.limitsFor(ch.Method)
	now := h.now()
	what := "code"
	if ch.LinkMAC != nil {
		what = "link"
	}
	switch {
	case ch.Failed && flow.FirstFactor != "":
		v.Error, v.Message = errCodeDelivery, "We could not send the "+what+". Try again later or contact the administrator."
	case (ch.State == statePending || ch.State == stateVerified) && now.Before(ch.ExpiresAt):
		v.Step = stepVerify
		v.Method = ch.Method
		v.Destination = ch.Destination
		if flow.FirstFactor == "" {
			// Standalone: show only what the visitor typed, never
			// what is on file (that would tell who exists).
			v.Destination = h.maskedIdentity(flow.User)
		}
		v.ExpiresIn = int(ch.ExpiresAt.Sub(now).Round(time.Second) / time.Second)
		left := max(0, limits.MaxAttempts-ch.Attempts)
		v.AttemptsLeft = &left
		v.CanResend = ch.Sends < limits.MaxSends
		if ch.LinkMAC != nil {
			// No code to type: the page waits for the link.
			v.Step, v.AttemptsLeft = stepLinkSent, nil
		}
		return true, nil
	case ch.State == stateDead:
		v.Error, v.Message = errCodeInvalid, "Too many attempts for this "+what+". Send a new one to try again."
	case ch.State == statePending || ch.State == stateVerified:
		v.Error, v.Message = "expired", "The "+what+" has expired. Send a new one."
	}
	return false, nil
}

// signInOptions are the ways a flow's user can go on.
type signInOptions struct {
	methods []string // the last used first; recovery always last
	enroll  bool     // may set up an authenticator app now (first_login)
}

// optionsFor lists the methods the flow's user can use. In standalone
// mode every identified name is offered every configured method, so the
// list does not reveal who exists or who has an app (SECURITY.md H37).
func (h *Handler) optionsFor(r *http.Request, flow *flowState) (signInOptions, error) {
	var o signInOptions
	if flow.FirstFactor == "" {
		if h.TOTP != nil {
			o.methods = append(o.methods, methodTOTP)
		}
		for _, ch := range h.channels() {
			o.methods = append(o.methods, ch.method)
		}
		if h.TOTP != nil {
			o.methods = append(o.methods, methodRecovery)
		}
		return o, nil
	}
	var rec userRecord
	if h.severalMethods() {
		var err error
		if rec, err = h.loadUser(r.Context(), flow.user()); err != nil {
			return o, err
		}
	}
	if rec.TOTP != nil {
		o.methods = append(o.methods, methodTOTP)
	}
	for _, ch := range h.channels() {
		if h.destinationFor(r, flow, ch.method) != "" {
			o.methods = append(o.methods, ch.method)
		}
	}
	if i := slices.Index(o.methods, rec.LastMethod); i > 0 {
		o.methods[0], o.methods[i] = o.methods[i], o.methods[0]
	}
	if len(rec.Recovery) > 0 {
		o.methods = append(o.methods, methodRecovery)
	}
	o.enroll = h.TOTP != nil && h.TOTP.Enroll == totp.EnrollFirstLogin && rec.TOTP == nil
	return o, nil
}

// addressFor is the address on file for the flow's user: the users list,
// allow_emails, or (second factor only) the configured address
// placeholder from the first factor. Never an address from the form.
func (h *Handler) addressFor(r *http.Request, flow *flowState) string {
	if a := h.dir.emailFor(flow.user()); a != "" {
		return a
	}
	if h.Email == nil || flow.FirstFactor == "" || h.Email.Address == "" || !h.identityTrusted(r, h.Email.Address) {
		return ""
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	v := repl.ReplaceKnown(h.Email.Address, "")
	if v == h.Email.Address {
		return ""
	}
	addr, err := email.ParseAddress(v)
	if err != nil {
		return ""
	}
	return addr
}

// maskedIdentity shows a standalone user what they typed, masked when it
// is an email address; names that are not addresses show nothing.
func (h *Handler) maskedIdentity(user string) string {
	if _, err := email.ParseAddress(user); err == nil {
		return email.Mask(user)
	}
	return ""
}

// form is the body of a POST, form-encoded or JSON.
type form struct {
	Username    string   `json:"username"`
	Method      string   `json:"method"`
	Code        string   `json:"code"`
	CurrentCode string   `json:"current_code"`
	Action      string   `json:"action"`
	Address     string   `json:"address"`
	Return      string   `json:"return"`
	Remember    formFlag `json:"remember"`
	CSRFToken   string   `json:"csrf_token"`
	Token       string   `json:"token"` // of a link
}

// formFlag is a checkbox: in JSON true, or any non-empty string but
// "false"; in a form, present.
type formFlag bool

func (f *formFlag) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case bool:
		*f = formFlag(v)
	case string:
		*f = formFlag(v != "" && v != "false")
	}
	return nil
}

func readForm(r *http.Request) (form, error) {
	var f form
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct == "application/json" {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return f, err
		}
		if err := json.Unmarshal(body, &f); err != nil {
			return f, fmt.Errorf("decoding JSON body: %w", err)
		}
	} else {
		if err := r.ParseForm(); err != nil {
			return f, err
		}
		f = form{
			Username:    r.PostForm.Get("username"),
			Method:      r.PostForm.Get("method"),
			Code:        r.PostForm.Get("code"),
			CurrentCode: r.PostForm.Get("current_code"),
			Action:      r.PostForm.Get("action"),
			Address:     r.PostForm.Get("address"),
			Return:      r.PostForm.Get("return"),
			Remember:    formFlag(r.PostForm.Get("remember") != ""),
			CSRFToken:   r.PostForm.Get("csrf_token"),
			Token:       r.PostForm.Get("token"),
		}
	}
	if t := r.Header.Get("X-CSRF-Token"); t != "" {
		f.CSRFToken = t
	}
	return f, nil
}

// sameOrigin refuses cross-site POSTs by the browser's own signals
// (SECURITY.md G35): Sec-Fetch-Site and Origin.
func (h *Handler) sameOrigin(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		// Our pages send Referrer-Policy: no-referrer, under which
		// browsers send "Origin: null" on their own form posts; the CSRF
		// token still guards these.
		return true
	}
	scheme := "http"
	if isHTTPS(r) {
		scheme = "https"
	}
	if strings.EqualFold(origin, scheme+"://"+r.Host) {
		return true
	}
	return h.baseURL != nil && strings.EqualFold(origin, h.baseURL.Scheme+"://"+h.baseURL.Host)
}

// post handles the POST endpoints: size limit, CSRF, then the action.
func (h *Handler) post(w http.ResponseWriter, r *http.Request, action string) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	f, formErr := readForm(r)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	ff, ok := h.firstFactor(r, repl)
	if !ok {
		return h.render(w, r, h.errorView(http.StatusUnauthorized, errCodeNoUser, "Sign in with your first factor first."))
	}
	if !h.sameOrigin(r) {
		return h.render(w, r, h.errorView(http.StatusForbidden, errCodeCSRF, "This form was sent from another site."))
	}
	if formErr != nil {
		return h.unreadable(w, r, ff, action, formErr)
	}
	if action == "logout" {
		return h.logout(w, r, f, ff)
	}
	flow := h.readFlow(r, ff)
	if flow == nil || !h.keys.validCSRF("f:"+flow.ID, f.CSRFToken) {
		return h.render(w, r, h.errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Reload it and try again."))
	}
	switch action {
	case "identify":
		return h.identify(w, r, f, flow)
	case "send", "resend":
		return h.send(w, r, f, flow, action == "resend")
	default:
		return h.verifyCode(w, r, f, flow)
	}
}

// unreadable answers a POST whose body could not be read. A verify
// attempt still counts as a failure in the user's lockout (SECURITY.md
// C21): an oversized or malformed body is a guess like any other.
func (h *Handler) unreadable(w http.ResponseWriter, r *http.Request, ff, action string, err error) error {
	if action == "verify" {
		if flow := h.readFlow(r, ff); flow != nil && flow.user() != "" {
			if _, cerr := h.countFailure(r.Context(), flow.user()); cerr != nil {
				return h.unavailable(w, r, "counting attempt", cerr)
			}
			h.metrics.verified(methodOther, false)
		}
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return h.render(w, r, h.errorView(http.StatusRequestEntityTooLarge, errCodeRequest, "The request is too large."))
	}
	return h.render(w, r, h.errorView(http.StatusBadRequest, errCodeRequest, "The request could not be read."))
}

// identify takes the user name in standalone mode, starts a fresh flow
// for it and sends a code to the address on file. Every name, known or
// not, gets the same answer (SECURITY.md H37).
func (h *Handler) identify(w http.ResponseWriter, r *http.Request, f form, flow *flowState) error {
	if flow.FirstFactor != "" {
		return h.render(w, r, h.errorView(http.StatusBadRequest, errCodeRequest, "You are already identified."))
	}
	user, ok := canonicalUser(f.Username)
	if !ok {
		return h.render(w, r, h.errorView(http.StatusBadRequest, errCodeRequest, "Enter your user name or email address."))
	}
	next, err := h.newFlow("", user, flow.Return)
	if err != nil {
		return err
	}
	c, err := h.flowCookie(r, next)
	if err != nil {
		return err
	}
	http.SetCookie(w, c)
	if chs := h.channels(); len(chs) == 1 && h.TOTP == nil {
		return h.sendAndShow(w, r, next, chs[0])
	}
	// Several methods: the visitor chooses; nothing is sent yet.
	return h.showStep(w, r, next)
}

// showStep answers a POST with the flow's step: a redirect to it for
// browsers, the step itself for JSON clients.
func (h *Handler) showStep(w http.ResponseWriter, r *http.Request, flow *flowState) error {
	if !wantsJSON(r) {
		http.Redirect(w, r, h.PathPrefix+"/", http.StatusSeeOther)
		return nil
	}
	v, err := h.stepView(r, flow)
	if err != nil {
		return h.unavailable(w, r, "reading flow state", err)
	}
	return h.render(w, r, v)
}

// send issues a code by the chosen method (only email so far); resend
// replaces the code of the current challenge.
func (h *Handler) send(w http.ResponseWriter, r *http.Request, f form, flow *flowState, resend bool) error {
	if flow.user() == "" {
		return h.render(w, r, h.errorView(http.StatusBadRequest, errCodeRequest, "Tell us who you are first."))
	}
	method := f.Method
	if method == "" && len(h.channels()) > 0 {
		method = h.channels()[0].method
	}
	ch, ok := h.channel(method)
	if !ok {
		return h.render(w, r, h.errorView(http.StatusBadRequest, errCodeRequest, "Unknown method."))
	}
	if flow.FirstFactor != "" && h.destinationFor(r, flow, method) == "" {
		return h.render(w, r, h.errorView(http.StatusForbidden, errCodeNoMethod, msgNoMethod))
	}
	if !resend {
		// A challenge that is over (out of attempts, undeliverable) makes
		// "send" start a fresh flow, as clearing cookies would: its
		// failures still count in the user's lockout.
		over, err := h.challengeOver(r, flow)
		if err != nil {
			return h.unavailable(w, r, "reading challenge", err)
		}
		if over {
			if flow, err = h.newFlow(flow.FirstFactor, flow.User, flow.Return); err != nil {
				return err
			}
			c, err := h.flowCookie(r, flow)
			if err != nil {
				return err
			}
			http.SetCookie(w, c)
		}
	}
	return h.sendAndShow(w, r, flow, ch)
}

// challengeOver reports whether the flow's challenge can take no more
// codes: dead (attempts used up, or never delivered) or already used.
func (h *Handler) challengeOver(r *http.Request, flow *flowState) (bool, error) {
	ch, err := h.loadChallenge(r, flow)
	return ch != nil && ch.State != statePending, err
}

// loadChallenge reads the flow's challenge; nil when there is none.
func (h *Handler) loadChallenge(r *http.Request, flow *flowState) (*challenge, error) {
	rec, err := h.store.Get(r.Context(), keyChallenge+h.challengeID(flow.ID))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	ch, err := decodeRecord[challenge](rec.Value)
	if err != nil {
		return nil, err
	}
	return &ch, nil
}

// sendAndShow issues a code for the flow and answers the verify step. In
// second-factor mode it waits for the first delivery attempt, so a
// failure reaches the page; standalone answers never wait (SECURITY.md H37).
func (h *Handler) sendAndShow(w http.ResponseWriter, r *http.Request, flow *flowState, ch channel) error {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	dest := h.destinationFor(r, flow, ch.method)
	sr := sendRequest{
		flow:   flow,
		sender: ch.sender,
		limits: ch.limits,
		ip:     ip,
		dest:   dest,
		site:   h.siteName(r),
		lang:   r.Header.Get("Accept-Language"),
		wait:   flow.FirstFactor != "",
	}
	sr.linkTTL = h.linkTTL(ch.method)
	if ch.method == methodSMS && dest != "" {
		sr.country, sr.perCountry = phoneCountry(dest), h.SMS.PerCountryPerHour
	}
	err := h.issue(r.Context(), sr)
	if err != nil {
		return h.sendFailed(w, r, err)
	}
	return h.showStep(w, r, flow)
}

// sendFailed answers a send that issue refused or could not deliver.
func (h *Handler) sendFailed(w http.ResponseWriter, r *http.Request, err error) error {
	var te *throttledError
	switch {
	case errors.As(err, &te):
		h.logger.Info("send throttled", zap.String("scope", te.scope))
		v := h.errorView(http.StatusTooManyRequests, errCodeThrottled, "Too many codes were requested. Wait a while and try again.")
		v.retry = te.retryAfter
		return h.render(w, r, v)
	case errors.Is(err, errTooManySends):
		v := h.errorView(http.StatusTooManyRequests, errCodeThrottled, "No more codes can be sent for this sign-in. Start again later.")
		v.retry = flowTTL
		return h.render(w, r, v)
	case errors.Is(err, errDelivery):
		return h.render(w, r, h.errorView(http.StatusBadGateway, errCodeDelivery, "We could not send the code. Try again later or contact the administrator."))
	}
	return h.unavailable(w, r, "issuing code", err)
}

// verifyCode checks a code; success starts a session with a fresh ID.
func (h *Handler) verifyCode(w http.ResponseWriter, r *http.Request, f form, flow *flowState) error {
	if flow.user() == "" {
		return h.render(w, r, h.errorView(http.StatusBadRequest, errCodeRequest, "Tell us who you are first."))
	}
	method := f.Method
	if method == "" {
		method = methodEmail
	}
	user := flow.user()
	out, err := h.verifyFactor(r.Context(), flow, method, f.Code)
	if err != nil {
		return h.unavailable(w, r, "verifying code", err)
	}
	if !out.ok {
		h.audit(r.Context(), "sign-in failed", zap.String("user", user), zap.String("method", method))
		return h.render(w, r, h.failedView(r, flow, method, out.attemptsLeft))
	}
	dest, err := h.startSession(w, r, flow, out.method, bool(f.Remember))
	if err != nil {
		return h.unavailable(w, r, "storing session", err)
	}
	if out.method == methodRecovery {
		h.notify(r, flow, authenticators.NoticeRecoveryCodeUsed, methodRecovery, zap.Int("recovery_codes_left", out.recoveryLeft))
	}
	if wantsJSON(r) {
		return h.render(w, r, &view{Step: stepDone, User: user, Method: out.method, Redirect: dest})
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
	return nil
}

// startSession ends a flow whose user passed a factor by method: a new
// session cookie (always a fresh ID), the flow cookie dropped, the place
// recorded for the policy, the device remembered when asked. It returns
// where the browser goes next.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, flow *flowState, method string, remember bool) (string, error) {
	user := flow.user()
	c, err := h.newSession(r, flow.FirstFactor, user, method)
	if err != nil {
		return "", err
	}
	h.audit(r.Context(), "sign-in succeeded", zap.String("user", user), zap.String("method", method))
	http.SetCookie(w, c)
	http.SetCookie(w, expiredCookie(r, flowCookieName))
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	if err := h.recordSignInPlace(r.Context(), user, ip); err != nil {
		h.logger.Error("recording sign-in place", zap.Error(err))
	}
	if remember && h.RememberDevice > 0 && flow.FirstFactor != "" {
		if dc, err := h.rememberDevice(r, flow.FirstFactor, user); err != nil {
			h.logger.Error("remembering device", zap.Error(err))
		} else {
			http.SetCookie(w, dc)
			h.audit(r.Context(), "device remembered", zap.String("user", user))
		}
	}
	dest, err := h.afterSignIn(r, user, method, flow.Return, flow.Next)
	if err != nil {
		h.logger.Error("reading user record after sign-in", zap.Error(err))
	}
	return dest, nil
}

// afterSignIn remembers the method of a sign-in and says where the
// browser goes next: the return path; or first the registration the user
// asked for, now that they passed the factor that authorizes it; or the
// authenticator app page for a user who could set one up, or just used a
// recovery code.
func (h *Handler) afterSignIn(r *http.Request, user, method, ret, next string) (string, error) {
	ret = orRoot(ret)
	dest, err := h.rememberMethod(r, user, method, ret)
	if kind, ok := strings.CutPrefix(next, "register/"); ok && slices.Contains(h.requiredFor(registerKinds[kind]), method) {
		dest = h.PathPrefix + "/" + next + "?return=" + url.QueryEscape(ret)
	}
	return dest, err
}

// rememberMethod records the method of a sign-in and returns where to go:
// ret, or the authenticator app page.
func (h *Handler) rememberMethod(r *http.Request, user, method, ret string) (string, error) {
	if !h.severalMethods() {
		return ret, nil
	}
	var hasApp bool
	err := h.updateUser(r.Context(), user, func(rec *userRecord) (storage.Op, error) {
		hasApp = rec.TOTP != nil
		if rec.LastMethod == method || method == methodRecovery {
			return storage.Keep, nil
		}
		rec.LastMethod = method
		return storage.Write, nil
	})
	if err != nil {
		return ret, err
	}
	if h.TOTP == nil {
		return ret, nil
	}
	manage := h.PathPrefix + "/enroll/totp?return=" + url.QueryEscape(ret)
	switch {
	case method == methodRecovery:
		return manage, nil
	case !hasApp && h.TOTP.Enroll != totp.EnrollOff:
		return manage, nil
	}
	return ret, nil
}

// logout revokes the session server-side. The CSRF token is bound to the
// session (or to the flow, for a page that shows both).
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, f form, ff string) error {
	id, ok := h.sessionIDFromCookie(readCookie(r, cookieName(r, sessionCookieName)))
	if !ok || !h.keys.validCSRF("s:"+id, f.CSRFToken) {
		return h.render(w, r, h.errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Reload it and try again."))
	}
	user, err := h.endSession(r)
	if err != nil {
		h.logger.Error("revoking session", zap.Error(err))
		return h.render(w, r, h.errorView(http.StatusServiceUnavailable, errCodeUnavail, "Sign-out failed. Try again in a minute."))
	}
	if err := h.forgetThisDevice(r); err != nil {
		h.logger.Error("forgetting device", zap.Error(err))
	}
	h.audit(r.Context(), "signed out", zap.String("user", user))
	http.SetCookie(w, expiredCookie(r, sessionCookieName))
	http.SetCookie(w, expiredCookie(r, deviceCookieName))
	http.SetCookie(w, expiredCookie(r, flowCookieName))
	if wantsJSON(r) {
		return h.render(w, r, &view{Step: "signed_out", Redirect: h.PathPrefix + "/"})
	}
	http.Redirect(w, r, h.PathPrefix+"/", http.StatusSeeOther)
	return nil
}

// failedView answers a failed verification. It shows only what does not
// depend on the challenge's state (the masked address on file, attempts
// left, a resend button while attempts remain), so wrong, expired,
// exhausted, unknown and locked answers stay the same for the same
// attempt count (SECURITY.md A7).
func (h *Handler) failedView(r *http.Request, flow *flowState, method string, attemptsLeft int) *view {
	v := h.errorView(http.StatusUnauthorized, errCodeInvalid, "That code is not valid.")
	v.Step = stepVerify
	v.Method = method
	v.CSRFToken = h.keys.csrfToken("f:" + flow.ID)
	v.standalone = flow.FirstFactor == ""
	h.offerRemember(v, flow)
	ch, isChannel := h.channel(method)
	if !isChannel {
		// Apps and recovery codes have no per-challenge budget; the
		// lockout, which is never revealed, bounds the guesses.
		return v
	}
	v.AttemptsLeft = &attemptsLeft
	v.CanResend = attemptsLeft > 0
	if v.standalone {
		v.Destination = h.maskedIdentity(flow.User)
	} else if dest := h.destinationFor(r, flow, method); dest != "" {
		v.Destination = ch.sender.Mask(dest)
	}
	if attemptsLeft == 0 {
		v.Message = "That code is not valid, and no attempts are left for it. Send a new code to try again."
	}
	return v
}

// unavailable answers a request the store could not serve: it is denied
// (fail closed), and the cause is logged.
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, doing string, err error) error {
	h.logger.Error(doing+"; denying", zap.Error(err))
	return h.render(w, r, h.errorView(http.StatusServiceUnavailable, errCodeUnavail, "Sign-in is unavailable right now. Try again in a minute."))
}

func (h *Handler) errorView(status int, code, msg string) *view {
	return &view{status: status, Error: code, Message: msg}
}

// audit writes an audit event with the client IP of the request behind
// ctx, when it is a request to the site.
func (h *Handler) audit(ctx context.Context, msg string, fields ...zap.Field) {
	if ip, ok := caddyhttp.GetVar(ctx, caddyhttp.ClientIPVarKey).(string); ok {
		fields = append(fields, zap.String("client_ip", ip))
	}
	h.logger.Named("audit").Info(msg, fields...)
}

func wantsJSON(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), "application/json")
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// render answers with JSON or the HTML page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, v *view) error {
	status := v.status
	if status == 0 {
		status = http.StatusOK
	}
	if v.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((v.retry+time.Second-1)/time.Second)))
	}
	if wantsJSON(r) {
		return writeJSON(w, status, v)
	}
	v.prefix = h.PathPrefix
	return writePage(w, status, v)
}
