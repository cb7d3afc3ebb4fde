package caddymfa

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/storage"
)

// post handles the POST endpoints: size limit, CSRF, then the action.
func (h *Handler) post(w http.ResponseWriter, r *http.Request, action string) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	f, formErr := readForm(r)
	ff, ok := h.firstFactor(r, replacer(r))
	if !ok {
		return h.pages.render(w, r, errorView(http.StatusUnauthorized, errCodeNoUser, "Sign in with your first factor first."))
	}
	if !sameOrigin(r, h.baseURL) {
		return h.pages.render(w, r, errorView(http.StatusForbidden, errCodeCSRF, "This form was sent from another site."))
	}
	if formErr != nil {
		return h.unreadable(w, r, ff, action, formErr)
	}
	if action == "logout" {
		return h.logout(w, r, f)
	}
	flow := h.flows.read(r, ff)
	if flow == nil && action == "verify" {
		if _, ok := h.pageSession(r, ff); ok {
			// A code sent again after its success ended the flow:
			// already signed in (SECURITY.md K53).
			return h.alreadySignedIn(w, r, orRoot(""))
		}
	}
	if flow == nil || !h.keys.validCSRFOf("f:", flow.ID, f.CSRFToken) {
		// Refused all the same; a browser is sent back to its flow.
		return h.signInEdge(w, r, flow, errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Reload it and try again."))
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
	flow := h.flows.read(r, ff)
	if action == "verify" && flow != nil && flow.user() != "" {
		if cerr := h.verifier.unreadable(r.Context(), flow.user(), h.guessNetwork(r)); cerr != nil {
			return h.pages.unavailable(w, r, "counting attempt", cerr)
		}
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return h.signInEdge(w, r, flow, errorView(http.StatusRequestEntityTooLarge, errCodeRequest, "The request is too large."))
	}
	return h.signInEdge(w, r, flow, errorView(http.StatusBadRequest, errCodeRequest, "The request could not be read."))
}

// identify takes the user name in standalone mode, starts a fresh flow
// for it and sends a code to the address on file. Every name, known or
// not, gets the same answer (SECURITY.md H37).
func (h *Handler) identify(w http.ResponseWriter, r *http.Request, f form, flow *flowState) error {
	if flow.FirstFactor != "" {
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeRequest, "You are already identified."))
	}
	user, ok := canonicalUser(f.Username)
	if !ok {
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeRequest, "Enter your user name or email address."))
	}
	next, err := h.flows.start("", user, flow.Return)
	if err != nil {
		return err
	}
	c, err := h.flows.cookie(r, next)
	if err != nil {
		return err
	}
	http.SetCookie(w, c)
	if chs := h.methods.channels(); len(chs) == 1 && h.TOTP == nil && h.passkeys == nil {
		return h.sendAndShow(w, r, next, chs[0])
	}
	// Several methods: the visitor chooses; nothing is sent yet.
	return h.showStep(w, r, next)
}

// send issues a code or link by the chosen method; resend replaces the
// code of the current challenge.
func (h *Handler) send(w http.ResponseWriter, r *http.Request, f form, flow *flowState, resend bool) error {
	if flow.user() == "" {
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeRequest, "Tell us who you are first."))
	}
	method := f.Method
	if chs := h.methods.channels(); method == "" && len(chs) > 0 {
		method = chs[0].method
	}
	ch, ok := h.methods.channel(method)
	if !ok || !flow.allows(method) {
		return h.signInRefused(w, r, flow, errorView(http.StatusBadRequest, errCodeRequest, "Unknown method."))
	}
	if flow.FirstFactor != "" && h.account(r, flow.FirstFactor, flow.user()).destination(r.Context(), method) == "" {
		return h.pages.render(w, r, errorView(http.StatusForbidden, errCodeNoMethod, msgNoMethod))
	}
	if !resend {
		// A challenge that is over (out of attempts, undeliverable, or
		// used) makes "send" start a fresh flow, as clearing cookies
		// would: its failures still count in the user's lockout.
		old, err := h.challenges.load(r.Context(), h.challenges.id(flow.slot()))
		if err != nil {
			return h.pages.unavailable(w, r, "reading challenge", err)
		}
		if old != nil && old.State != statePending {
			if flow, err = h.flows.start(flow.FirstFactor, flow.User, flow.Return); err != nil {
				return err
			}
			c, err := h.flows.cookie(r, flow)
			if err != nil {
				return err
			}
			http.SetCookie(w, c)
		}
	}
	return h.sendAndShow(w, r, flow, ch)
}

// sendAndShow issues a code for the flow and answers the verify step. In
// second-factor mode it waits for the first delivery attempt, so a
// failure reaches the page; standalone answers never wait, and their code
// is queued once the answer is out (SECURITY.md H37).
func (h *Handler) sendAndShow(w http.ResponseWriter, r *http.Request, flow *flowState, ch channel) error {
	dest := h.account(r, flow.FirstFactor, flow.user()).destination(r.Context(), ch.method)
	sr := sendRequest{
		slot:    flow.slot(),
		user:    flow.user(),
		sender:  ch.sender,
		limits:  ch.limits,
		ip:      clientIP(r),
		network: h.guessNetwork(r),
		dest:    dest,
		site:    h.site(r),
		lang:    h.pages.userLang(r),
		wait:    flow.FirstFactor != "",
		linkTTL: h.methods.linkTTL(ch.method),
	}
	if !sr.wait {
		sr.held = new(heldDelivery)
	}
	if sr.linkTTL > 0 {
		sr.origin = h.requestOrigin(r)
	}
	sr.country, sr.perCountry = ch.countryOf(dest)
	issued, err := h.challenges.issue(r.Context(), sr)
	if err != nil {
		var te *throttledError
		if errors.As(err, &te) {
			if v, ok := h.stillLive(r, flow); ok {
				// Too soon for a new code: stay on the code form, with the
				// code already sent, and say when to ask again.
				h.logger.Info("send throttled", zap.String("scope", te.scope))
				v.status, v.Error, v.retry = http.StatusTooManyRequests, errCodeThrottled, te.retryAfter
				v.Message = "The code already sent still works; a new one cannot be sent yet."
				return h.signInRefused(w, r, flow, v)
			}
			if te.scope == scopeCooldown {
				if done, err := h.reuseLive(w, r, flow); done || err != nil {
					return err
				}
			}
		}
		if v := h.pages.sendRefusal(err); v != nil {
			return h.signInRefused(w, r, flow, v)
		}
		return h.pages.sendFailed(w, r, err)
	}
	ttl := time.Duration(ch.limits.CodeTTL)
	if sr.linkTTL > 0 {
		ttl = sr.linkTTL
	}
	h.rememberLive(r, flow, ttl)
	flow.knownChallenge(issued)
	return answerThenDeliver(w, sr.held, func(w http.ResponseWriter) error {
		return h.showStep(w, r, flow)
	})
}

// stillLive returns the verify step of the flow's challenge when it can
// still be used (its code or link works), for an answer that keeps the
// user on it.
func (h *Handler) stillLive(r *http.Request, flow *flowState) (*view, bool) {
	v, err := h.stepView(r, flow)
	if err != nil || (v.Step != stepVerify && v.Step != stepLinkSent) || v.Error != "" {
		return nil, false
	}
	return v, true
}

// verifyCode checks a code; success starts a session with a fresh ID.
func (h *Handler) verifyCode(w http.ResponseWriter, r *http.Request, f form, flow *flowState) error {
	if flow.user() == "" {
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeRequest, "Tell us who you are first."))
	}
	method := f.Method
	if method == "" {
		method = methodEmail
	}
	if !flow.allows(method) {
		return h.signInRefused(w, r, flow, errorView(http.StatusBadRequest, errCodeRequest, "Unknown method."))
	}
	user := flow.user()
	// The check keeps the sign-in's language in the user's record, and
	// writes the session a right code starts.
	r = r.WithContext(withSignInLang(r.Context(), h.pages.requestLang(r).Tag()))
	st, err := prepareSession(r, h.sessions, flow.FirstFactor, user, method)
	if err != nil {
		return h.pages.unavailable(w, r, "preparing session", err)
	}
	out, err := h.verifier.signIn(r.Context(), user, h.guessNetwork(r), flow.slot(), method, f.Code, st)
	if err != nil {
		return h.pages.unavailable(w, r, "verifying code", err)
	}
	if out.repeat {
		return h.alreadySignedIn(w, r, orRoot(flow.Return))
	}
	if !out.ok {
		h.audit.event(r.Context(), "sign-in failed", userField(user), zap.String("method", method))
		return h.signInRefused(w, r, flow, h.failedView(r, flow, method, out.attemptsLeft))
	}
	acct := h.account(r, flow.FirstFactor, user)
	dest, err := h.startedSession(w, r, flow, out.method, bool(f.Remember), st)
	if err != nil {
		return h.pages.unavailable(w, r, "storing session", err)
	}
	if out.method == methodRecovery {
		h.notify(r, acct, authenticators.NoticeRecoveryCodeUsed, methodRecovery, nil, zap.Int("recovery_codes_left", out.recoveryLeft))
	}
	if wantsJSON(r) {
		return h.pages.render(w, r, &view{Step: stepDone, User: user, Method: out.method, Redirect: dest})
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
	return nil
}

// alreadySignedIn answers a code or link repeated right after it signed
// the flow in (a double click, a client retrying a lost answer) as the
// success did, without a second session: the session the first answer
// set is the one (SECURITY.md K53, A3).
func (h *Handler) alreadySignedIn(w http.ResponseWriter, r *http.Request, dest string) error {
	if wantsJSON(r) {
		return h.pages.render(w, r, &view{Step: stepDone, Redirect: dest, Message: "You are already signed in."})
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
	return nil
}

// startSession ends a flow whose user passed a factor by method: a new
// session cookie (always a fresh ID), the flow cookie dropped, the place
// recorded for the policy, the device remembered when asked, the method
// remembered. It returns where the browser goes next: the return path;
// or first the registration the user asked for, now that they passed the
// factor that authorizes it; or the authenticator app page for a user
// who could set one up, or just used a recovery code.
func (h *Handler) startSession(w http.ResponseWriter, r *http.Request, flow *flowState, method string, remember bool) (string, error) {
	st, err := prepareSession(r, h.sessions, flow.FirstFactor, flow.user(), method)
	if err != nil {
		return "", err
	}
	if err := h.sessions.write(r.Context(), st); err != nil {
		return "", err
	}
	return h.startedSession(w, r, flow, method, remember, st)
}

// startedSession is startSession once the session st is written (by the
// check of a code, verifier.signIn, or by startSession).
func (h *Handler) startedSession(w http.ResponseWriter, r *http.Request, flow *flowState, method string, remember bool, st *sessionStart) (string, error) {
	ctx := r.Context()
	user := flow.user()
	c, err := sessionCookie(r, h.sessions, st)
	if err != nil {
		return "", err
	}
	h.audit.event(ctx, "sign-in succeeded", userField(user), zap.String("method", method))
	http.SetCookie(w, c)
	http.SetCookie(w, h.flows.expired(r))
	if err := h.policy.recordPlace(ctx, user, clientIP(r)); err != nil {
		h.logger.Error("recording sign-in place", zap.Error(err))
	}
	if remember && h.RememberDevice > 0 && flow.FirstFactor != "" {
		if token, expires, err := h.devices.rememberFrom(ctx, flow.FirstFactor, user, originOf(r, h.sessions.country)); err != nil {
			h.logger.Error("remembering device", zap.Error(err))
		} else {
			if err := h.sessions.linkDevice(ctx, c.Value, h.devices.key(token)); err != nil {
				h.logger.Error("linking session to remembered device", zap.Error(err))
			}
			http.SetCookie(w, deviceCookie(r, h.realm, h.keys, token, expires))
			h.audit.event(ctx, "device remembered", userField(user))
		}
	}
	ret := orRoot(flow.Return)
	dest := ret
	several := h.methods.severalMethods()
	hasApp, err := true, error(nil)
	switch lang, noted := signInLang(ctx); {
	case !noted:
		// A link or a passkey: the language goes in with the method.
		hasApp, err = h.users.noteSignIn(ctx, user, method, several, h.pages.requestLang(r).Tag())
	case several && method != methodTOTP:
		// A code's check kept the language (verifier.guarded); an app
		// code's also wrote the method with the new time step
		// (verifier.ownFactor) and proved the app is there.
		hasApp, err = h.users.noteSignIn(ctx, user, method, true, lang)
	}
	if several {
		switch {
		case err != nil:
			h.logger.Error("reading user record after sign-in", zap.Error(err))
		case h.TOTP == nil, len(flow.StepUp) > 0: // a step-up goes straight back
		case method == methodRecovery, !hasApp && h.TOTP.Enroll != totp.EnrollOff && method != methodPasskey:
			dest = h.PathPrefix + "/enroll/totp?return=" + url.QueryEscape(ret)
		}
	} else if err != nil {
		h.logger.Error("recording the sign-in's language", zap.Error(err))
	}
	if kind, ok := strings.CutPrefix(flow.Next, "register/"); ok && slices.Contains(h.methods.requiredFor(registerKinds[kind]), method) ||
		flow.Next == "enroll/totp" && h.TOTP != nil && isFactor(method) ||
		flow.Next == "passkey/register" && h.passkeys != nil && isFactor(method) {
		dest = h.PathPrefix + "/" + flow.Next + "?return=" + url.QueryEscape(ret)
	}
	return dest, nil
}

// noteSignIn records in the user's record, in one update, what a sign-in
// tells about the user: the method, preselected next time (when track is
// set: the user has several), and the language, for notices of changes an
// administrator makes later. It writes only what changed, so a sign-in
// like the last one writes nothing. It reports whether the user has an
// authenticator app.
func (u *users) noteSignIn(ctx context.Context, user, method string, track bool, lang string) (hasApp bool, err error) {
	lang = recordLang(lang)
	err = u.update(ctx, user, func(rec *userRecord) (storage.Op, error) {
		hasApp = rec.TOTP != nil
		op := storage.Keep
		if track && rec.LastMethod != method && method != methodRecovery {
			rec.LastMethod, op = method, storage.Write
		}
		if rec.Lang != lang {
			rec.Lang, op = lang, storage.Write
		}
		return op, nil
	})
	return hasApp, err
}

// recordLang is a language tag as the user record keeps it: English, the
// default, as nothing.
func recordLang(tag string) string {
	if tag == "en" {
		return ""
	}
	return tag
}

// signInLangKey carries the language tag of a sign-in to the check of an
// app or recovery code, which writes it with the user's record.
type signInLangKey struct{}

// withSignInLang returns ctx carrying the language tag of the sign-in.
func withSignInLang(ctx context.Context, tag string) context.Context {
	return context.WithValue(ctx, signInLangKey{}, recordLang(tag))
}

// signInLang returns the tag withSignInLang put in ctx.
func signInLang(ctx context.Context) (string, bool) {
	tag, ok := ctx.Value(signInLangKey{}).(string)
	return tag, ok
}

// logout revokes the session server-side. The CSRF token is bound to the
// session (or to the flow, for a page that shows both).
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, f form) error {
	v := h.realm.read(r, cookieSession)
	id, ok := h.sessions.idFromCookie(v)
	if !ok || !h.keys.validCSRF("s:"+id, f.CSRFToken) {
		return h.pages.render(w, r, errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Reload it and try again."))
	}
	user, err := h.sessions.end(r.Context(), v)
	if err != nil {
		h.logger.Error("revoking session", zap.Error(err))
		return h.pages.render(w, r, errorView(http.StatusServiceUnavailable, errCodeUnavail, "Sign-out failed. Try again in a minute."))
	}
	if token, ok := deviceToken(r, h.realm, h.keys); ok {
		if err := h.devices.forget(r.Context(), token); err != nil {
			h.logger.Error("forgetting device", zap.Error(err))
		}
	}
	h.audit.event(r.Context(), "signed out", userField(user))
	http.SetCookie(w, h.realm.expired(r, cookieSession))
	http.SetCookie(w, h.realm.expired(r, cookieDevice))
	http.SetCookie(w, h.realm.expired(r, cookieFlow))
	return h.toSignedOut(w, r, f.Return)
}
