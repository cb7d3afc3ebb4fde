package caddymfa

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/storage"
)

// Steps of registration.
const (
	stepRegister         = "register"
	stepRegisterInfo     = "register_info"
	stepRegisterVerify   = "register_verify"
	stepRegisterRequired = "register_required"

	actionSend = "send"

	keyRegister = "reg/" // reg/<binding hash>: the address being registered
)

// registerKinds maps the path under /register/ to its method.
var registerKinds = map[string]string{"phone": methodSMS, "email": methodEmail}

// pendingRegistration is the address a user asked to register, waiting
// for the code sent to it.
type pendingRegistration struct {
	User    string `json:"u"`
	Method  string `json:"m"`
	Address string `json:"a"`
	Return  string `json:"r,omitempty"`
}

// registration returns the registration settings of a method, if on.
func (h *Handler) registration(method string) *authenticators.Registration {
	switch {
	case method == methodSMS && h.SMS != nil:
		return h.SMS.Registration
	case method == methodEmail && h.Email != nil:
		return h.Email.Registration
	}
	return nil
}

// requiredFor are the methods that authorize registering for method: the
// configured ones, else totp, else the other message method.
func (h *Handler) requiredFor(method string) []string {
	if reg := h.registration(method); reg != nil && len(reg.Require) > 0 {
		return reg.Require
	}
	if h.TOTP != nil {
		return []string{methodTOTP}
	}
	for _, ch := range h.channels() {
		if ch.method != method {
			return []string{ch.method}
		}
	}
	return nil
}

// validateRegistration refuses a registration that no other factor can
// authorize: it would let one factor replace the other.
func (h *Handler) validateRegistration() error {
	for _, method := range []string{methodSMS, methodEmail} {
		if h.registration(method) == nil {
			continue
		}
		req := h.requiredFor(method)
		if len(req) == 0 {
			return fmt.Errorf("%s registration needs another factor to authorize it (a totp block or the other message method)", method)
		}
		for _, m := range req {
			_, isChannel := h.channel(m)
			switch {
			case m == method:
				return fmt.Errorf("%s registration: require %s would let the factor being changed authorize its own change; require another factor", method, m)
			case m == methodTOTP && h.TOTP == nil, m != methodTOTP && !isChannel:
				return fmt.Errorf("%s registration: require %s, but %s is not configured", method, m, m)
			}
		}
	}
	return nil
}

// registerLinks are the "register" links shown during sign-in.
func (h *Handler) registerLinks(ret string) map[string]string {
	var links map[string]string
	for kind, method := range registerKinds {
		if reg := h.registration(method); reg != nil && reg.DuringLogin {
			if links == nil {
				links = map[string]string{}
			}
			links[kind] = h.PathPrefix + "/register/" + kind + "?return=" + url.QueryEscape(ret)
		}
	}
	return links
}

// serveRegister serves GET and POST {path_prefix}/register/phone and
// /register/email: a user adds or changes their address, confirmed by a
// code sent to the new one, after passing a required other factor in the
// last 15 minutes.
func (h *Handler) serveRegister(w http.ResponseWriter, r *http.Request, kind string) error {
	method, ok := registerKinds[kind]
	if !ok || h.registration(method) == nil {
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("%s registration is not configured", kind))
	}
	post := r.Method == http.MethodPost
	if !post && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return h.methodNotAllowed(w, "GET, HEAD, POST")
	}
	f, ff, refusal := h.readPage(w, r)
	if refusal != nil {
		return h.render(w, r, refusal)
	}
	ret := f.Return
	if !post {
		ret = r.URL.Query().Get("return")
	}
	ret, _ = safeReturnPath(ret, h.PathPrefix)
	required := h.requiredFor(method)
	s, signedIn := h.validSession(r, ff)
	if !signedIn || !slices.Contains(required, s.Method) || h.now().Sub(s.Created) >= enrollFreshness {
		if post {
			return h.render(w, r, h.errorView(http.StatusForbidden, errCodeNotAllowed, "Confirm it's you with "+strings.Join(required, " or ")+" first."))
		}
		return h.registerRequired(w, r, ff, kind, ret, required)
	}
	id, _ := h.sessionIDFromCookie(readCookie(r, cookieName(r, sessionCookieName)))
	pf := &flowState{ID: "register\x00" + id, Issued: s.Created.Unix(), FirstFactor: s.FirstFactor, User: s.User, Return: ret}
	csrf := h.keys.csrfToken("s:" + id)
	if !post {
		v := &view{Step: stepRegister, Method: method, User: s.User, CSRFToken: csrf, Return: ret, Redirect: orRoot(ret)}
		if h.registration(method).ShowInfo && r.URL.Query().Get("start") == "" {
			v.Step = stepRegisterInfo
			v.Continue = h.PathPrefix + "/register/" + kind + "?start=1&return=" + url.QueryEscape(ret)
			return h.render(w, r, v)
		}
		if ch, ok := h.channel(method); ok {
			v.Destination = ch.sender.Mask(h.destinationFor(r, pf, method))
		}
		return h.render(w, r, v)
	}
	if !h.keys.validCSRF("s:"+id, f.CSRFToken) {
		return h.render(w, r, h.errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Reload it and try again."))
	}
	if f.Action == actionSend {
		return h.registerSend(w, r, f, pf, method, csrf)
	}
	return h.registerConfirm(w, r, f, pf, s, method, csrf)
}

// registerRequired asks the user to pass a required factor first; the
// flow remembers to come back here afterwards.
func (h *Handler) registerRequired(w http.ResponseWriter, r *http.Request, ff, kind, ret string, required []string) error {
	if ff == "" {
		v := h.errorView(http.StatusForbidden, errCodeNotAllowed, "Sign in first, then change your "+kind+".")
		v.Redirect = h.PathPrefix + "/"
		return h.render(w, r, v)
	}
	flow := h.readFlow(r, ff)
	if flow == nil {
		var err error
		if flow, err = h.newFlow(ff, "", ret); err != nil {
			return err
		}
	}
	flow.Next = "register/" + kind
	if ret != "" {
		flow.Return = ret
	}
	c, err := h.flowCookie(r, flow)
	if err != nil {
		return err
	}
	http.SetCookie(w, c)
	opts, err := h.optionsFor(r, flow)
	if err != nil {
		return h.unavailable(w, r, "reading user record", err)
	}
	v := &view{Step: stepRegisterRequired, User: flow.user(), CSRFToken: h.keys.csrfToken("f:" + flow.ID), status: http.StatusForbidden,
		Error: errCodeNotAllowed, Message: "To change your " + kind + ", first confirm it's you with " + strings.Join(required, " or ") + "."}
	for _, m := range opts.methods {
		if slices.Contains(required, m) {
			v.Methods = append(v.Methods, m)
		}
	}
	if len(v.Methods) == 0 {
		v.Message = "To change your " + kind + " you need " + strings.Join(required, " or ") + ", which your account does not have. Contact the administrator."
	}
	return h.render(w, r, v)
}

// registerSend checks the new address and sends a code to it.
func (h *Handler) registerSend(w http.ResponseWriter, r *http.Request, f form, pf *flowState, method, csrf string) error {
	ch, _ := h.channel(method)
	address, problem := h.checkNewAddress(method, f.Address)
	if problem != "" {
		v := &view{Step: stepRegister, Method: method, User: pf.user(), CSRFToken: csrf, Return: pf.Return, Redirect: orRoot(pf.Return),
			status: http.StatusBadRequest, Error: errCodeRequest, Message: problem}
		return h.render(w, r, v)
	}
	b, err := encodeRecord(pendingRegistration{User: pf.user(), Method: method, Address: address, Return: pf.Return})
	if err != nil {
		return err
	}
	if err := h.store.Put(r.Context(), keyRegister+h.keys.storeID(pf.ID), b, h.now().Add(flowTTL), false); err != nil {
		return h.unavailable(w, r, "storing registration", err)
	}
	sr := sendRequest{flow: pf, sender: ch.sender, limits: ch.limits, ip: clientIP(r), dest: address,
		site: h.siteName(r), lang: r.Header.Get("Accept-Language"), wait: true}
	if method == methodSMS {
		sr.country, sr.perCountry = phoneCountry(address), h.SMS.PerCountryPerHour
	}
	if err := h.issue(r.Context(), sr); err != nil {
		return h.sendFailed(w, r, err)
	}
	limits := ch.limits
	left := limits.MaxAttempts
	v := &view{Step: stepRegisterVerify, Method: method, User: pf.user(), CSRFToken: csrf, Return: pf.Return, Redirect: orRoot(pf.Return),
		Destination: ch.sender.Mask(address), ExpiresIn: int(time.Duration(limits.CodeTTL) / time.Second), AttemptsLeft: &left}
	return h.render(w, r, v)
}

// checkNewAddress validates an address a user wants to register. It
// returns the address in canonical form, or what is wrong with it in
// words for the page.
func (h *Handler) checkNewAddress(method, input string) (address, problem string) {
	switch method {
	case methodSMS:
		number, _, err := h.SMS.CheckNumber(input)
		if errors.Is(err, sms.ErrCountryNotAllowed) {
			return "", "Codes cannot be sent to numbers in that country."
		}
		if err != nil {
			return "", "Enter the number in international form, starting with + and the country code."
		}
		return number, ""
	case methodEmail:
		addr, err := email.ParseAddress(input)
		if err != nil {
			return "", "Enter a valid email address."
		}
		return addr, ""
	}
	return "", "Unknown method."
}

// registerConfirm checks the code sent to the new address and, when it is
// right, makes the address the user's.
func (h *Handler) registerConfirm(w http.ResponseWriter, r *http.Request, f form, pf *flowState, s *cachedSession, method, csrf string) error {
	ctx := r.Context()
	key := keyRegister + h.keys.storeID(pf.ID)
	rec, err := h.store.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return h.render(w, r, h.errorView(http.StatusBadRequest, errCodeRequest, "Enter the new address first."))
	}
	if err != nil {
		return h.unavailable(w, r, "reading registration", err)
	}
	pending, err := decodeRecord[pendingRegistration](rec.Value)
	if err != nil || pending.User != pf.user() || pending.Method != method {
		return h.render(w, r, h.errorView(http.StatusBadRequest, errCodeRequest, "Enter the new address first."))
	}
	pf.Return = pending.Return
	out, err := h.verifyFactor(ctx, pf, method, f.Code)
	if err != nil {
		return h.unavailable(w, r, "verifying code", err)
	}
	ch, _ := h.channel(method)
	if !out.ok {
		left := out.attemptsLeft
		v := &view{Step: stepRegisterVerify, Method: method, User: pf.user(), CSRFToken: csrf, Return: pf.Return, Redirect: orRoot(pf.Return),
			Destination: ch.sender.Mask(pending.Address), AttemptsLeft: &left, status: http.StatusUnauthorized, Error: errCodeInvalid, Message: "That code is not valid."}
		return h.render(w, r, v)
	}
	who := &flowState{FirstFactor: pf.FirstFactor, User: pf.User}
	old := map[string]string{method: h.destinationFor(r, who, method)}
	err = h.updateUser(ctx, pf.user(), func(u *userRecord) (storage.Op, error) {
		if method == methodSMS {
			u.Phone = pending.Address
		} else {
			u.Email = pending.Address
		}
		return storage.WriteDurable, nil
	})
	if err != nil {
		return h.unavailable(w, r, "storing the new address", err)
	}
	_ = h.store.Delete(ctx, key)
	// The notice goes to the old address of the changed method (never to
	// the new one, which may be an attacker's) unless another method
	// reaches the user first.
	h.factorChanged(w, r, factorChange{who: who, event: authenticators.NoticeFactorAdded, factor: method, keep: s, noticeTo: old},
		zap.String("address", ch.sender.Mask(pending.Address)))
	dest := orRoot(pf.Return)
	if wantsJSON(r) {
		return h.render(w, r, &view{Step: stepDone, User: pf.user(), Method: method, Destination: ch.sender.Mask(pending.Address), Redirect: dest})
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
	return nil
}
