package caddymfa

import (
	"context"
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
	"github.com/caddymfa/caddy-mfa/storage"
)

// Steps of registration.
const (
	stepRegister         = "register"
	stepRegisterInfo     = "register_info"
	stepRegisterVerify   = "register_verify"
	stepRegisterRequired = "register_required"
	// stepConfirmRequired asks a session made by a policy exemption to
	// pass a factor before it changes the authenticator app.
	stepConfirmRequired = "confirm_required"

	actionSend = "send"

	keyRegister = "reg/" // reg/<binding hash>: the address being registered
)

// registerKinds maps the path under /register/ to its method.
var registerKinds = map[string]string{"phone": methodSMS, "email": methodEmail}

// pendingRegistration is the address a user asked to register, waiting
// for the code sent to it, written once that code is out. It says where
// to return and what the page shows; the address registered is the one
// the challenge holds with the code (challenge.Address).
type pendingRegistration struct {
	// Realm is the realm of the session registering the address
	// (SECURITY.md K49).
	Realm   string `json:"rl"`
	User    string `json:"u"`
	Method  string `json:"m"`
	Address string `json:"a"`
	Return  string `json:"r,omitempty"`
}

// serveRegister serves GET and POST {path_prefix}/register/phone and
// /register/email: a user adds or changes their address, confirmed by a
// code sent to the new one, after passing a required other factor in the
// last 15 minutes.
func (h *Handler) serveRegister(w http.ResponseWriter, r *http.Request, kind string) error {
	method, ok := registerKinds[kind]
	if !ok || h.methods.registration(method) == nil {
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("%s registration is not configured", kind))
	}
	post := r.Method == http.MethodPost
	if !post && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD, POST")
	}
	f, ff, refusal := h.readPage(w, r)
	if refusal != nil {
		return h.pages.render(w, r, refusal)
	}
	ret := f.Return
	if !post {
		ret = r.URL.Query().Get("return")
	}
	ret, _ = h.realm.safeReturn(ret, h.PathPrefix)
	required := h.methods.requiredFor(method)
	s, signedIn := requestSession(r, h.sessions, ff)
	// A required factor passed in this session's lifetime, recently;
	// never a policy exemption (SECURITY.md N61).
	if !signedIn || !slices.Contains(required, s.Method) || !s.factorWithin(h.now(), enrollFreshness) {
		if post && wantsJSON(r) {
			return h.pages.render(w, r, errorView(http.StatusForbidden, errCodeNotAllowed, "Confirm it's you first, then try again."))
		}
		if post {
			// The page of the form asks for the factor first.
			http.Redirect(w, r, regURL(h.PathPrefix, kind, ret, ""), http.StatusSeeOther)
			return nil
		}
		return h.confirmFirst(w, r, ff, "register/"+kind, kind, ret, required)
	}
	id := requestSessionID(r, h.sessions)
	rp := &regPage{
		slot: challengeSlot{binding: "register\x00" + id, since: time.Unix(s.Created.Unix(), 0)},
		acct: h.account(r, s.FirstFactor, s.User),
		kind: kind,
		ret:  ret,
		csrf: h.keys.csrfToken("s:" + id),
	}
	if !post {
		return h.registerPage(w, r, rp, method)
	}
	if !h.keys.validCSRF("s:"+id, f.CSRFToken) {
		return h.registerRefused(w, r, rp, errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Reload it and try again."), "")
	}
	if f.Action == actionSend {
		return h.registerSend(w, r, f, rp, method)
	}
	return h.registerConfirm(w, r, f, rp, s, method)
}

// regPage is a signed-in user's registration of an address: the account,
// the challenge slot of the code sent to the new address (bound to the
// session), where to return, and the CSRF token of the page.
type regPage struct {
	slot challengeSlot
	acct *account
	kind string // "phone" or "email", as in the path
	ret  string
	csrf string
}

// regURL is the address of a registration page: the form, or with step
// "verify" the code form of the address just sent to.
func regURL(prefix, kind, ret, step string) string {
	u := prefix + "/register/" + kind + "?start=1"
	if step != "" {
		u += "&step=" + step
	}
	if ret != "" {
		u += "&return=" + url.QueryEscape(ret)
	}
	return u
}

// registerPage answers GET: the explanation first (show_info), the form,
// or with ?step=verify the code form of the address the code went to
// while that code can be used; with the error of the form just posted,
// if any (flash.go).
func (h *Handler) registerPage(w http.ResponseWriter, r *http.Request, rp *regPage, method string) error {
	ctx := r.Context()
	q := r.URL.Query()
	v := &view{Step: stepRegister, Method: method, User: rp.acct.user, CSRFToken: rp.csrf, Return: rp.ret, Redirect: orRoot(rp.ret)}
	if h.methods.registration(method).ShowInfo && q.Get("start") == "" {
		v.Step = stepRegisterInfo
		v.Continue = regURL(h.PathPrefix, rp.kind, rp.ret, "")
		return h.pages.render(w, r, v)
	}
	ch, _ := h.methods.channel(method)
	if q.Get("step") == "verify" {
		pending, found, err := h.registrations.get(ctx, rp.slot)
		if err != nil && !errors.Is(err, errBadRecord) {
			return h.pages.unavailable(w, r, "reading registration", err)
		}
		c, err := h.challenges.load(ctx, h.challenges.id(rp.slot))
		if err != nil {
			return h.pages.unavailable(w, r, "reading challenge", err)
		}
		limits := ch.limits
		if found && pending.User == rp.acct.user && pending.Method == method && c != nil && c.State == statePending &&
			h.now().Before(c.ExpiresAt) && c.Attempts < limits.MaxAttempts {
			left := limits.MaxAttempts - c.Attempts
			v.Step, v.AttemptsLeft = stepRegisterVerify, &left
			v.Destination = ch.sender.Mask(pending.Address)
			v.ExpiresIn = int(c.ExpiresAt.Sub(h.now()).Round(time.Second) / time.Second)
			h.takeFlash(w, r, v, "register/"+rp.kind, rp.csrf)
			return h.pages.render(w, r, v)
		}
	}
	// "Codes now go to" only when an address is on file.
	if dest := rp.acct.destination(ctx, method); dest != "" {
		v.Destination = ch.sender.Mask(dest)
	}
	h.takeFlash(w, r, v, "register/"+rp.kind, rp.csrf)
	return h.pages.render(w, r, v)
}

// registerRefused answers a registration form that failed: JSON clients
// get v; browsers a 303 to the registration page (the form, or with step
// "verify" the code form) that shows v's error, so a reload posts nothing.
func (h *Handler) registerRefused(w http.ResponseWriter, r *http.Request, rp *regPage, v *view, step string) error {
	return h.redirectWithError(w, r, v, regURL(h.PathPrefix, rp.kind, rp.ret, step), "register/"+rp.kind, rp.csrf)
}

// registrations owns the addresses users asked to register while they
// wait for the code sent to them (reg/<binding hash>), keyed by the
// challenge slot of that code.
type registrations struct {
	realm *realm
	store storage.Store
	keys  keyring
	now   func() time.Time
}

func (rs *registrations) key(s challengeSlot) string {
	return keyRegister + rs.keys.storeID(rs.realm.name+"\x00"+s.binding)
}

// put keeps the address being registered for the slot.
func (rs *registrations) put(ctx context.Context, s challengeSlot, p pendingRegistration) error {
	p.Realm = rs.realm.name
	b, err := encodeRecord(p)
	if err != nil {
		return err
	}
	return rs.store.Put(ctx, rs.key(s), b, rs.now().Add(flowTTL), false)
}

// get returns the address being registered for the slot; found is false
// when there is none.
func (rs *registrations) get(ctx context.Context, s challengeSlot) (p pendingRegistration, found bool, err error) {
	rec, err := rs.store.Get(ctx, rs.key(s))
	if errors.Is(err, storage.ErrNotFound) {
		return p, false, nil
	}
	if err != nil {
		return p, false, err
	}
	p, err = decodeRecord[pendingRegistration](rec.Value)
	if err == nil && p.Realm != rs.realm.name {
		return pendingRegistration{}, false, nil
	}
	return p, true, err
}

// drop forgets the address once registered.
func (rs *registrations) drop(ctx context.Context, s challengeSlot) error {
	return rs.store.Delete(ctx, rs.key(s))
}

// factorMethods are the methods that verify a factor, any of which
// confirms a session made by a policy exemption.
var factorMethods = []string{methodTOTP, methodEmail, methodSMS, methodRecovery}

// confirmFirst asks the user to pass a required factor before the change
// of their "what" (phone, email, authenticator app); the flow remembers
// to come back to next (register/phone, enroll/totp) afterwards.
func (h *Handler) confirmFirst(w http.ResponseWriter, r *http.Request, ff, next, what, ret string, required []string) error {
	thing := []string{"what", "thing." + what}
	if ff == "" {
		v := errorView(http.StatusForbidden, errCodeNotAllowed, "Sign in first, then change {what}.")
		v.msgArgs = thing
		v.Redirect = h.PathPrefix + "/"
		return h.pages.render(w, r, v)
	}
	flow := h.flows.read(r, ff)
	if flow == nil {
		var err error
		if flow, err = h.flows.start(ff, "", ret); err != nil {
			return err
		}
	}
	flow.Next = next
	if ret != "" {
		flow.Return = ret
	}
	c, err := h.flows.cookie(r, flow)
	if err != nil {
		return err
	}
	http.SetCookie(w, c)
	opts, err := h.account(r, flow.FirstFactor, flow.user()).options(r.Context(), h.methods)
	if err != nil {
		return h.pages.unavailable(w, r, "reading user record", err)
	}
	step := stepRegisterRequired
	if !strings.HasPrefix(next, "register/") {
		step = stepConfirmRequired
	}
	v := &view{Step: step, User: flow.user(), CSRFToken: h.keys.csrfTokenOf("f:", flow.ID), status: http.StatusForbidden,
		Error: errCodeNotAllowed, Message: "To change {what}, first confirm it's you.", msgArgs: thing}
	if step == stepConfirmRequired {
		v.Message = "To change {what}, first confirm it's you with a code."
	}
	for _, m := range opts.methods {
		if slices.Contains(required, m) {
			v.Methods = append(v.Methods, m)
		}
	}
	if len(v.Methods) == 0 {
		v.Message = "To change {what} you need another way to confirm it's you, which your account does not have. Contact the administrator."
	}
	return h.pages.render(w, r, v)
}

// registerSend checks the new address and sends a code to it.
func (h *Handler) registerSend(w http.ResponseWriter, r *http.Request, f form, rp *regPage, method string) error {
	ch, _ := h.methods.channel(method)
	user := rp.acct.user
	address, problem := h.methods.checkNewAddress(method, f.Address)
	if problem != "" {
		v := &view{Step: stepRegister, Method: method, User: user, CSRFToken: rp.csrf, Return: rp.ret, Redirect: orRoot(rp.ret),
			status: http.StatusBadRequest, Error: errCodeRequest, Message: problem}
		return h.registerRefused(w, r, rp, v, "")
	}
	// The challenge keeps the address with its code, in one update, so
	// only the address that received the code can be confirmed; a send
	// that is refused (a cap, the cooldown, max_sends) or fails changes
	// nothing that was pending (SECURITY.md N62).
	sr := sendRequest{slot: rp.slot, user: user, sender: ch.sender, limits: ch.limits, ip: clientIP(r), dest: address,
		site: h.site(r), lang: h.pages.userLang(r), wait: true, bind: true}
	sr.country, sr.perCountry = ch.countryOf(address)
	if _, err := h.challenges.issue(r.Context(), sr); err != nil {
		if v := h.pages.sendRefusal(err); v != nil {
			return h.registerRefused(w, r, rp, v, "")
		}
		return h.pages.sendFailed(w, r, err)
	}
	if err := h.registrations.put(r.Context(), rp.slot, pendingRegistration{User: user, Method: method, Address: address, Return: rp.ret}); err != nil {
		return h.pages.unavailable(w, r, "storing registration", err)
	}
	if !wantsJSON(r) {
		http.Redirect(w, r, regURL(h.PathPrefix, rp.kind, rp.ret, "verify"), http.StatusSeeOther)
		return nil
	}
	limits := ch.limits
	left := limits.MaxAttempts
	v := &view{Step: stepRegisterVerify, Method: method, User: user, CSRFToken: rp.csrf, Return: rp.ret, Redirect: orRoot(rp.ret),
		Destination: ch.sender.Mask(address), ExpiresIn: int(time.Duration(limits.CodeTTL) / time.Second), AttemptsLeft: &left}
	return h.pages.render(w, r, v)
}

// registerConfirm checks the code sent to the new address and, when it is
// right, makes the address the user's.
func (h *Handler) registerConfirm(w http.ResponseWriter, r *http.Request, f form, rp *regPage, s *cachedSession, method string) error {
	ctx := r.Context()
	user := rp.acct.user
	pending, found, err := h.registrations.get(ctx, rp.slot)
	if !found && err == nil {
		return h.registerRefused(w, r, rp, errorView(http.StatusBadRequest, errCodeRequest, "Enter the new address first."), "")
	}
	if err != nil && !errors.Is(err, errBadRecord) {
		return h.pages.unavailable(w, r, "reading registration", err)
	}
	if err != nil || pending.User != user || pending.Method != method {
		return h.registerRefused(w, r, rp, errorView(http.StatusBadRequest, errCodeRequest, "Enter the new address first."), "")
	}
	ret := pending.Return
	out, err := h.verifier.factor(ctx, user, h.guessNetwork(r), rp.slot, method, f.Code)
	if err != nil {
		return h.pages.unavailable(w, r, "verifying code", err)
	}
	ch, _ := h.methods.channel(method)
	if !out.ok {
		left := out.attemptsLeft
		v := &view{Step: stepRegisterVerify, Method: method, User: user, CSRFToken: rp.csrf, Return: ret, Redirect: orRoot(ret),
			Destination: ch.sender.Mask(pending.Address), AttemptsLeft: &left, status: http.StatusUnauthorized, Error: errCodeInvalid, Message: "That code is not valid."}
		if left == 0 {
			// The code form is over: back to the address, to send a new one.
			v.Message = "That code is not valid, and no attempts are left for it. Send a new code to try again."
			return h.registerRefused(w, r, rp, v, "")
		}
		return h.registerRefused(w, r, rp, v, "verify")
	}
	// The address the code was sent to, never one stored beside it.
	address := out.address
	if address == "" {
		return h.registerRefused(w, r, rp, errorView(http.StatusBadRequest, errCodeRequest, "Enter the new address first."), "")
	}
	old := map[string]string{method: rp.acct.destination(ctx, method)}
	err = h.users.update(ctx, user, func(u *userRecord) (storage.Op, error) {
		if method == methodSMS {
			u.Phone = address
		} else {
			u.Email = address
		}
		return storage.WriteDurable, nil
	})
	if err != nil {
		return h.pages.unavailable(w, r, "storing the new address", err)
	}
	_ = h.registrations.drop(ctx, rp.slot)
	// The notice goes to the old address of the changed method (never to
	// the new one, which may be an attacker's) unless another method
	// reaches the user first; the record is read again, after the change.
	who := h.account(r, rp.acct.firstFactor, user)
	h.factorChanged(w, r, factorChange{who: who, event: authenticators.NoticeFactorAdded, factor: method, keep: s, noticeTo: old},
		zap.String("address", ch.sender.Mask(address)))
	dest := orRoot(ret)
	if wantsJSON(r) {
		return h.pages.render(w, r, &view{Step: stepDone, User: user, Method: method, Destination: ch.sender.Mask(address), Redirect: dest})
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
	return nil
}
