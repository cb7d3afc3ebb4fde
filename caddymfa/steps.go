package caddymfa

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
)

// getStep shows where the flow stands. It never sends a message and never
// changes server state, but for picking up a link confirmed on another
// device; it may start a flow cookie.
func (h *Handler) getStep(w http.ResponseWriter, r *http.Request) error {
	ff, ok := h.firstFactor(r, replacer(r))
	if !ok {
		return h.pages.render(w, r, errorView(http.StatusUnauthorized, errCodeNoUser, "Sign in with your first factor first."))
	}
	q := query(r)
	s, signedIn := h.pageSession(r, ff)
	var stepUp []string
	if signedIn {
		// A session of the realm: done, unless a handler asked for a
		// step-up (step_up) or this one's own methods and max_age want
		// more (SECURITY.md K50).
		stepUp = h.stepUpMethods(q.Get("step_up"))
		if len(stepUp) == 0 && h.now().UnixNano() < s.goodUntil {
			v := &view{Step: stepDone, User: s.User, Method: s.Method, CSRFToken: h.keys.csrfToken("s:" + requestSessionID(r, h.sessions))}
			v.Return, _ = h.realm.safeReturn(q.Get("return"), h.PathPrefix)
			if h.TOTP != nil {
				v.Enroll = h.PathPrefix + "/enroll/totp"
			}
			v.PasskeyPage = h.passkeyPage()
			return h.pages.render(w, r, v)
		}
		if len(stepUp) == 0 {
			stepUp = h.stepUpMethods(strings.Join(h.gate.wanted(), " "))
		}
	}
	flow := h.flows.read(r, ff)
	ret, _ := h.realm.safeReturn(q.Get("return"), h.PathPrefix)
	if signedIn && flow != nil && (flow.user() != s.User || !slices.Equal(flow.StepUp, stepUp)) {
		flow = nil // not this step-up's flow
	}
	if flow == nil || (ret != "" && ret != flow.Return) {
		if flow == nil {
			user := ""
			if signedIn && ff == "" {
				user = s.User // standalone: who steps up is known
			}
			var err error
			if flow, err = h.flows.start(ff, user, ret); err != nil {
				return err
			}
			flow.StepUp = stepUp
		} else {
			// Another protected page sent the browser here: keep the
			// flow (and a code already sent), change only where it ends.
			flow.Return = ret
		}
		c, err := h.flows.cookie(r, flow)
		if err != nil {
			return err
		}
		http.SetCookie(w, c)
	}
	if r.Method == http.MethodGet && len(h.methods.linkMethods()) > 0 {
		// A link confirmed on another device: this GET signs in.
		method, ok, err := h.verifier.pickUp(r.Context(), flow.principal(), h.guessNetwork(r), flow.slot())
		if err != nil {
			return h.pages.unavailable(w, r, "completing sign-in", err)
		}
		if ok {
			return h.signedIn(w, r, flow, method)
		}
	}
	v, err := h.signInNotice(w, r, flow)
	if v == nil && err == nil {
		v, err = h.stepView(r, flow)
	}
	if err != nil {
		return h.pages.unavailable(w, r, "reading flow state", err)
	}
	return h.pages.render(w, r, v)
}

// pageSession returns the request's session for the sign-in pages, unless
// the browser is passing a factor to confirm a change (a flow with
// somewhere to go next, started by confirmFirst): its session, made by a
// policy exemption or another factor, must not hide the steps.
func (h *Handler) pageSession(r *http.Request, ff string) (*cachedSession, bool) {
	s, ok := requestSession(r, h.sessions, ff)
	if ok {
		if flow := h.flows.read(r, ff); flow != nil && flow.Next != "" {
			return nil, false
		}
	}
	return s, ok
}

// query is r's query parameters, read only. A request without a query
// (the usual flow request) gets nil, which reads as empty, where
// URL.Query makes a new map each time.
func query(r *http.Request) url.Values {
	if r.URL.RawQuery == "" {
		return nil
	}
	return r.URL.Query()
}

// stepView works out the current step of a flow. The "method" query
// parameter picks a method without sending anything: "totp" or
// "recovery" show their code form, "choose" the method list even while
// a code is pending. The user's record is read once.
func (h *Handler) stepView(r *http.Request, flow *flowState) (*view, error) {
	v := &view{CSRFToken: h.keys.csrfTokenOf("f:", flow.ID), standalone: flow.FirstFactor == "", LinkMethods: h.methods.linkMethods()}
	if flow.user() == "" {
		v.Step = stepIdentify
		v.Passwordless = h.passkeys != nil && h.passkeys.passwordless
		return v, nil
	}
	v.typed = flow.typed()
	if v.typed != "" && query(r).Get("method") == stepIdentify {
		// "Change" next to the name typed: the identify step again,
		// filled in; the flow and any code sent stay until a new name
		// is posted.
		v.Step, v.User = stepIdentify, v.typed
		v.Passwordless = h.passkeys != nil && h.passkeys.passwordless
		return v, nil
	}
	ctx := r.Context()
	acct := h.account(r, flow.FirstFactor, flow.user())
	v.User = acct.user
	opts, err := acct.options(ctx, h.methods)
	if err != nil {
		return nil, err
	}
	if err := h.offerPasskey(ctx, acct, &opts, v); err != nil {
		return nil, err
	}
	if flow.FirstFactor != "" {
		v.Register = h.methods.registerLinks(flow.Return)
	}
	if len(flow.StepUp) > 0 {
		opts.methods = slices.DeleteFunc(opts.methods, func(m string) bool { return !slices.Contains(flow.StepUp, m) })
		opts.enroll = false
	}
	want := query(r).Get("method")
	if want == "" && len(flow.StepUp) == 1 && (flow.StepUp[0] == methodTOTP || flow.StepUp[0] == methodRecovery) {
		want = flow.StepUp[0]
	}
	h.pages.offerRemember(v, acct.principal)
	if (want == methodTOTP || want == methodRecovery) && slices.Contains(opts.methods, want) {
		v.Step, v.Method, v.Methods = stepVerify, want, opts.methods
		return v, nil
	}
	if want != stepChoose && len(h.methods.channels()) > 0 {
		ch := flow.challenge
		if !flow.known {
			var err error
			if ch, err = h.challenges.load(ctx, h.challenges.id(flow.slot())); err != nil {
				return v, err
			}
		}
		if h.pages.challenge(ch, acct.principal, h.now(), v) {
			return v, nil
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
			v.Destination = typedAddress(flow.User)
		}
		return v, nil
	}
	for _, m := range v.Methods {
		if ch, ok := h.methods.channel(m); ok {
			if v.Destinations == nil {
				v.Destinations = map[string]string{}
			}
			v.Destinations[m] = ch.sender.Mask(acct.destination(ctx, m))
		}
	}
	v.Destination = v.Destinations[methodEmail]
	return v, nil
}

// showStep answers a POST with the flow's step: a redirect to it for
// browsers, the step itself for JSON clients.
func (h *Handler) showStep(w http.ResponseWriter, r *http.Request, flow *flowState) error {
	if !wantsJSON(r) {
		http.Redirect(w, r, h.PathPrefix+"/", http.StatusSeeOther)
		return nil
	}
	v, err := h.signInNotice(w, r, flow)
	if v == nil && err == nil {
		v, err = h.stepView(r, flow)
	}
	if err != nil {
		return h.pages.unavailable(w, r, "reading flow state", err)
	}
	return h.pages.render(w, r, v)
}

// signInOptions are the ways a user can go on.
type signInOptions struct {
	methods []string // the last used first; recovery always last
	enroll  bool     // may set up an authenticator app now (first_login)
}

// options lists the methods the user can use. In standalone mode every
// identified name is offered every configured method, so the list does
// not reveal who exists or who has an app (SECURITY.md H37).
func (a *account) options(ctx context.Context, m *methods) (signInOptions, error) {
	var o signInOptions
	if a.firstFactor == "" {
		if m.totp != nil {
			o.methods = append(o.methods, methodTOTP)
		}
		for _, ch := range m.channels() {
			o.methods = append(o.methods, ch.method)
		}
		if m.totp != nil {
			o.methods = append(o.methods, methodRecovery)
		}
		return o, nil
	}
	var rec userRecord
	if m.severalMethods() {
		var err error
		if rec, err = a.record(ctx); err != nil {
			return o, err
		}
	}
	if rec.TOTP != nil {
		o.methods = append(o.methods, methodTOTP)
	}
	for _, ch := range m.channels() {
		if a.destination(ctx, ch.method) != "" {
			o.methods = append(o.methods, ch.method)
		}
	}
	if i := slices.Index(o.methods, rec.LastMethod); i > 0 {
		o.methods[0], o.methods[i] = o.methods[i], o.methods[0]
	}
	if len(rec.Recovery) > 0 {
		o.methods = append(o.methods, methodRecovery)
	}
	o.enroll = m.totp != nil && m.totp.Enroll == totp.EnrollFirstLogin && rec.TOTP == nil
	return o, nil
}
