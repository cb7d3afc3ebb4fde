package caddymfa

import (
	"context"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/passkey"
)

//go:embed assets/passkey.js assets/passkey.html
var passkeyAssets embed.FS

var passkeyScript, _ = passkeyAssets.ReadFile("assets/passkey.js")

// passkeyCSP is the Content-Security-Policy of the pages when passkeys
// are on: as strict as contentSecurityPolicy, but for our own script
// (assets/passkey.js, served under path_prefix) and its requests to us.
// No inline script, no eval.
const passkeyCSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Steps and error codes of passkeys.
const (
	stepPasskeys          = "passkeys"
	errCodeInvalidPasskey = "invalid_credential"
)

// servePasskey serves the passkey endpoints under path_prefix.
func (h *Handler) servePasskey(w http.ResponseWriter, r *http.Request, sub string) error {
	if h.passkeys == nil {
		return caddyhttp.Error(http.StatusNotFound, errors.New("passkey is not configured"))
	}
	get := r.Method == http.MethodGet || r.Method == http.MethodHead
	if sub == "/passkey.js" {
		if !get {
			return methodNotAllowed(w, "GET, HEAD")
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, err := w.Write(passkeyScript)
		return err
	}
	var in form
	if !get {
		if r.Method != http.MethodPost {
			allow := "GET, HEAD, POST"
			if sub == "/passkey/rename" || sub == "/passkey/remove" {
				allow = "POST"
			}
			return methodNotAllowed(w, allow)
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		var err error
		if in, err = readForm(r); err != nil {
			if sub == "/passkey/login" {
				// An unreadable answer is a failed attempt (SECURITY.md C21).
				if flow := h.flows.read(r, h.ffOrEmpty(r)); flow != nil && flow.user() != "" {
					if cerr := h.verifier.unreadable(r.Context(), flow.user(), h.guessNetwork(r)); cerr != nil {
						return h.pages.unavailable(w, r, "counting attempt", cerr)
					}
				}
			}
			return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeRequest, "The request could not be read."))
		}
		if !sameOrigin(r, h.baseURL) {
			return h.pages.render(w, r, errorView(http.StatusForbidden, errCodeCSRF, "This request was sent from another site."))
		}
	}
	ff, ok := h.firstFactor(r, replacer(r))
	if !ok {
		return h.pages.render(w, r, errorView(http.StatusUnauthorized, errCodeNoUser, "Sign in with your first factor first."))
	}
	switch sub {
	case "/passkey/register":
		if get {
			return h.passkeyRegisterPage(w, r, ff)
		}
		return h.passkeyRegister(w, r, ff, in)
	case "/passkey/login":
		if get {
			return h.passkeyLoginOptions(w, r, ff)
		}
		return h.passkeyLogin(w, r, ff, in)
	case "/passkey/rename", "/passkey/remove":
		if get {
			return h.backToFlow(w, r)
		}
		return h.passkeyChange(w, r, ff, in, sub == "/passkey/remove")
	}
	return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("no mfa endpoint %s", sub))
}

// ffOrEmpty is the first-factor user of r, "" when there is none.
func (h *Handler) ffOrEmpty(r *http.Request) string {
	ff, _ := h.firstFactor(r, replacer(r))
	return ff
}

// passkeyAuth is who is adding or changing passkeys, and on what
// authority: a session made by a factor in the last 15 minutes, or
// (enroll first_login) a sign-in flow past the first factor for a user
// who has no passkey yet.
type passkeyAuth struct {
	user    string
	flow    *flowState     // set for a registration during sign-in
	session *cachedSession // set for a change from a session
	binding string
	stale   bool // a session, but not fresh from a factor: confirm first
	acct    *account
	rec     userRecord
}

// passkeyAuthority works out who may add or change passkeys with this
// request; nil means nobody. Policy exemptions are not factors
// (SECURITY.md N61): their sessions are stale however new.
func (h *Handler) passkeyAuthority(r *http.Request, ff string, changing bool) (*passkeyAuth, error) {
	var auth *passkeyAuth
	if s, ok := requestSession(r, h.sessions, ff); ok {
		auth = &passkeyAuth{user: s.User, session: s, binding: "s:" + requestSessionID(r, h.sessions), stale: !s.factorWithin(h.now(), enrollFreshness)}
	} else if flow := h.flows.read(r, ff); flow != nil && flow.FirstFactor != "" && !changing && h.Passkey.Enroll == passkey.EnrollFirstLogin {
		auth = &passkeyAuth{user: flow.user(), flow: flow, binding: "f:" + flow.ID}
	} else {
		return nil, nil
	}
	auth.acct = h.account(r, ff, auth.user)
	rec, err := auth.acct.record(r.Context())
	if err != nil {
		return nil, err
	}
	if auth.flow != nil && len(rec.Passkeys) > 0 {
		return nil, nil // trust on first use only
	}
	auth.rec = rec
	return auth, nil
}

// passkeyPost checks a POST that adds or changes passkeys: the
// authority and the CSRF token bound to it. A nil auth means the request
// was answered (refused), with err the result to return.
func (h *Handler) passkeyPost(w http.ResponseWriter, r *http.Request, ff string, in form, changing bool) (*passkeyAuth, error) {
	auth, err := h.passkeyAuthority(r, ff, changing)
	switch {
	case err != nil:
		return nil, h.pages.unavailable(w, r, "reading user record", err)
	case auth == nil || auth.stale:
		return nil, h.passkeyRefusal(w, r, ff, auth)
	case !h.keys.validCSRF(auth.binding, in.CSRFToken):
		return nil, h.pages.render(w, r, errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Reload it and try again."))
	}
	return auth, nil
}

// passkeyRefusal answers a request without the authority to add or
// change passkeys. A browser with a stale session is asked for a code
// first and comes back.
func (h *Handler) passkeyRefusal(w http.ResponseWriter, r *http.Request, ff string, auth *passkeyAuth) error {
	if auth != nil && auth.stale && r.Method == http.MethodGet && !wantsJSON(r) {
		return h.confirmFirst(w, r, ff, "passkey/register", "passkeys", "", factorMethods)
	}
	v := errorView(http.StatusForbidden, errCodeNotAllowed, "Sign in first, then add a passkey.")
	if auth != nil && auth.stale {
		v.Message = "For your security, confirm it's you with a code again (sign out and in) before changing your passkeys."
	}
	v.Redirect = h.PathPrefix + "/"
	return h.pages.render(w, r, v)
}

// passkeyRegisterPage answers GET /passkey/register: for JSON clients
// the options of a new passkey ({"publicKey", "csrf_token"}, and the
// passkeys the user has); for browsers the passkey page, whose script
// asks for the options.
func (h *Handler) passkeyRegisterPage(w http.ResponseWriter, r *http.Request, ff string) error {
	auth, err := h.passkeyAuthority(r, ff, false)
	if err != nil {
		return h.pages.unavailable(w, r, "reading user record", err)
	}
	if auth == nil || auth.stale {
		return h.passkeyRefusal(w, r, ff, auth)
	}
	if !wantsJSON(r) {
		return h.pages.render(w, r, h.passkeyView(auth, auth.rec.Passkeys))
	}
	opts, err := h.passkeys.startRegistration(r.Context(), auth.binding, auth.user, auth.rec)
	var te *throttledError
	switch {
	case errors.As(err, &te):
		v := errorView(http.StatusTooManyRequests, errCodeThrottled, "Too many passkey setups were started.")
		v.retry = te.retryAfter
		return h.pages.render(w, r, v)
	case errors.Is(err, errTooManyKeys):
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeNotAllowed, fmt.Sprintf("You have %d passkeys, the most an account can have. Remove one first.", maxPasskeys)))
	case err != nil:
		return h.pages.unavailable(w, r, "starting passkey registration", err)
	}
	return writeJSON(w, http.StatusOK, map[string]any{
		"publicKey":  json.RawMessage(opts),
		"csrf_token": h.keys.csrfToken(auth.binding),
		"passkeys":   passkeyInfos(auth.rec.Passkeys),
	})
}

// passkeyView is the passkey page.
func (h *Handler) passkeyView(auth *passkeyAuth, ps []passkeyFactor) *view {
	ret := "/"
	if auth.flow != nil {
		ret = orRoot(auth.flow.Return)
	}
	return &view{Step: stepPasskeys, User: auth.user, CSRFToken: h.keys.csrfToken(auth.binding), Passkeys: passkeyInfos(ps), Redirect: ret}
}

// passkeyRegister answers POST /passkey/register: {"name", "credential"}.
// A passkey added during sign-in (first_login) signs the user in.
func (h *Handler) passkeyRegister(w http.ResponseWriter, r *http.Request, ff string, in form) error {
	ctx := r.Context()
	auth, err := h.passkeyPost(w, r, ff, in, false)
	if auth == nil {
		return err
	}
	name, err := passkeyName(in.Name)
	if err != nil {
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeRequest, err.Error()+"."))
	}
	p, ok, err := h.passkeys.finishRegistration(ctx, auth.binding, auth.user, name, in.Credential)
	switch {
	case errors.Is(err, errPasskeyTaken):
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeInvalidPasskey, "This passkey is already registered to another account."))
	case errors.Is(err, errTooManyKeys):
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeNotAllowed, fmt.Sprintf("You have %d passkeys, the most an account can have.", maxPasskeys)))
	case errors.Is(err, errFactorChanged):
		return h.pages.render(w, r, errorView(http.StatusConflict, errCodeNotAllowed, "Your passkeys were changed meanwhile. Reload the page."))
	case err != nil:
		return h.pages.unavailable(w, r, "storing passkey", err)
	case !ok:
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeInvalidPasskey, "The passkey could not be registered. Try again."))
	}
	h.factorChanged(w, r, factorChange{who: auth.acct, event: authenticators.NoticeFactorAdded, factor: methodPasskey, keep: auth.session}, zap.String("passkey", p.Name))
	rec, err := auth.acct.reload(ctx)
	if err != nil {
		return h.pages.unavailable(w, r, "reading user record", err)
	}
	out := map[string]any{"step": stepPasskeys, "passkey": p.info(), "passkeys": passkeyInfos(rec.Passkeys)}
	if auth.flow != nil {
		dest, err := h.startSession(w, r, auth.flow, methodPasskey, false)
		if err != nil {
			return h.pages.unavailable(w, r, "storing session", err)
		}
		out["step"], out["redirect"] = stepDone, dest
	}
	return writeJSON(w, http.StatusOK, out)
}

// passkeyLoginOptions answers GET /passkey/login during a flow, or with
// passwordless on before any name is given: {"publicKey", "csrf_token"}.
func (h *Handler) passkeyLoginOptions(w http.ResponseWriter, r *http.Request, ff string) error {
	flow := h.flows.read(r, ff)
	if flow == nil {
		v := errorView(http.StatusBadRequest, errCodeRequest, "Start the sign-in first.")
		v.Redirect = h.PathPrefix + "/"
		return h.pages.render(w, r, v)
	}
	user := flow.user()
	if user == "" && !h.Passkey.Passwordless {
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeRequest, "Tell us who you are first."))
	}
	var rec userRecord
	if user != "" && ff != "" {
		var err error
		if rec, err = h.account(r, ff, user).record(r.Context()); err != nil {
			return h.pages.unavailable(w, r, "reading user record", err)
		}
	}
	opts, ok, err := h.passkeys.startLogin(r.Context(), "f:"+flow.ID, user, rec)
	if err != nil {
		return h.pages.unavailable(w, r, "starting passkey sign-in", err)
	}
	if !ok {
		return h.pages.render(w, r, errorView(http.StatusForbidden, errCodeNoMethod, "No passkey is registered for your account."))
	}
	return writeJSON(w, http.StatusOK, map[string]any{"publicKey": json.RawMessage(opts), "csrf_token": h.keys.csrfTokenOf("f:", flow.ID)})
}

// passkeyLogin answers POST /passkey/login, {"credential"}, like POST
// /verify: a session and the done step, or 401 invalid_credential counted
// in the lockout. Every attempt goes through verifier.run: counted in the
// user's lockout (per client network in standalone mode) before the
// assertion is checked, never checked for a locked user (SECURITY.md P5).
// A passwordless answer names its user by the user handle; one that
// names nobody this site knows counts nowhere.
func (h *Handler) passkeyLogin(w http.ResponseWriter, r *http.Request, ff string, in form) error {
	ctx := r.Context()
	flow := h.flows.read(r, ff)
	if flow == nil || !h.keys.validCSRFOf("f:", flow.ID, in.CSRFToken) {
		return h.pages.render(w, r, errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Reload it and try again."))
	}
	user := flow.user()
	if user == "" && !h.Passkey.Passwordless {
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeRequest, "Tell us who you are first."))
	}
	c, err := h.passkeys.take(ctx, ceremonyLogin, "f:"+flow.ID)
	if err != nil {
		return h.pages.unavailable(w, r, "reading passkey ceremony", err)
	}
	a, err := passkey.ParseAssertion(in.Credential)
	if err != nil {
		h.logger.Debug("passkey answer unreadable", zap.Error(err))
		a = nil
	}
	if user == "" && a != nil {
		if user, err = h.passkeys.userOfHandle(ctx, a.UserHandle()); err != nil {
			return h.pages.unavailable(w, r, "finding passkey user", err)
		}
		if user != "" && !h.dir.mayPasskey(user) {
			user = ""
		}
	}
	ok := false
	if user != "" {
		out, err := h.verifier.run(ctx, user, h.guessNetwork(r), methodPasskey, func(locked bool) (verifyOutcome, error) {
			ok, err := h.passkeys.check(ctx, c, a, user, locked)
			return verifyOutcome{ok: ok, method: methodPasskey}, err
		})
		if err != nil {
			return h.pages.unavailable(w, r, "verifying passkey", err)
		}
		ok = out.ok
	} else {
		h.metrics.verified(methodPasskey, false)
	}
	if !ok {
		h.audit.event(ctx, "sign-in failed", zap.String("user", user), zap.String("method", methodPasskey))
		v := errorView(http.StatusUnauthorized, errCodeInvalidPasskey, "That passkey was not accepted. Try again, or use another way to sign in.")
		v.CSRFToken = h.keys.csrfTokenOf("f:", flow.ID)
		return h.pages.render(w, r, v)
	}
	if flow.user() == "" {
		// Passwordless: the passkey named the user.
		ret := flow.Return
		if flow, err = h.flows.start("", user, ret); err != nil {
			return err
		}
	}
	dest, err := h.startSession(w, r, flow, methodPasskey, false)
	if err != nil {
		return h.pages.unavailable(w, r, "storing session", err)
	}
	if wantsJSON(r) {
		return h.pages.render(w, r, &view{Step: stepDone, User: user, Method: methodPasskey, Redirect: dest})
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
	return nil
}

// passkeyChange answers POST /passkey/rename ({"id", "name"}) and POST
// /passkey/remove ({"id"}): from a session made by a factor in the last
// 15 minutes, like changes of an authenticator app; the user is notified
// of a removal.
func (h *Handler) passkeyChange(w http.ResponseWriter, r *http.Request, ff string, in form, remove bool) error {
	ctx := r.Context()
	auth, err := h.passkeyPost(w, r, ff, in, true)
	if auth == nil {
		return err
	}
	id, err := base64.RawURLEncoding.DecodeString(in.ID)
	if err != nil || len(id) == 0 {
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeRequest, "Unknown passkey."))
	}
	var ok bool
	if remove {
		var p passkeyFactor
		if p, ok, err = h.passkeys.remove(ctx, auth.user, id); err == nil && ok {
			h.factorChanged(w, r, factorChange{who: auth.acct, event: authenticators.NoticeFactorRemoved, factor: methodPasskey, keep: auth.session}, zap.String("passkey", p.Name))
		}
	} else {
		name, nerr := passkeyName(in.Name)
		if nerr != nil || name == "" {
			return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeRequest, "Give the passkey a name of at most 64 characters."))
		}
		if ok, err = h.passkeys.rename(ctx, auth.user, id, name); err == nil && ok {
			h.audit.event(ctx, "passkey renamed", zap.String("user", auth.user), zap.String("passkey", name))
		}
	}
	if err != nil {
		return h.pages.unavailable(w, r, "changing passkey", err)
	}
	if !ok {
		return h.pages.render(w, r, errorView(http.StatusNotFound, errCodeRequest, "Unknown passkey."))
	}
	if !wantsJSON(r) {
		http.Redirect(w, r, h.PathPrefix+"/passkey/register", http.StatusSeeOther)
		return nil
	}
	rec, err := auth.acct.reload(ctx)
	if err != nil {
		return h.pages.unavailable(w, r, "reading user record", err)
	}
	return writeJSON(w, http.StatusOK, map[string]any{"step": stepPasskeys, "passkeys": passkeyInfos(rec.Passkeys)})
}

// mayPasskey reports whether a standalone user may sign in with a
// passkey: listed and not disabled, or matching allow_emails.
func (d *directory) mayPasskey(user string) bool {
	if u, ok := d.users[user]; ok {
		return !u.Disabled
	}
	return d.emailFor(user) != ""
}

// provisionPasskey builds the relying party from base_url, never from a
// request (SECURITY.md P1).
func (h *Handler) provisionPasskey() error {
	if h.Passkey == nil {
		return nil
	}
	h.Passkey.ApplyDefaults()
	if err := h.Passkey.Validate(); err != nil {
		return err
	}
	if h.Passkey.Passwordless && !h.standalone() {
		return errors.New("passkey: passwordless needs standalone mode (user \"\"): with a first factor the user is already known")
	}
	if h.Passkey.Enroll == passkey.EnrollFirstLogin && h.standalone() {
		return errors.New("passkey: enroll first_login needs a first factor; standalone mode has none")
	}
	rp, err := passkey.New(h.Passkey, h.baseURL, h.standalone())
	if err != nil {
		return fmt.Errorf("passkey: %w", err)
	}
	h.passkeyRP = rp
	return nil
}

// passkeyPage is where a user manages their passkeys.
func (h *Handler) passkeyPage() string {
	if h.passkeys == nil {
		return ""
	}
	return h.PathPrefix + "/passkey/register"
}

// PasskeyScript reports whether the page needs the passkey script: the
// passkey page, a choose step offering a passkey, an identify step with
// passwordless sign-in.
func (p pageData) PasskeyScript() bool {
	return p.Step == stepPasskeys || p.Passwordless && p.Step == stepIdentify || p.Step == stepChoose && slices.Contains(p.Methods, methodPasskey)
}

// AddedText and LastUsedText say when a passkey was added and last used.
func (p passkeyInfo) AddedText() string { return p.Added.UTC().Format(time.DateOnly) }

func (p passkeyInfo) LastUsedText() string {
	if p.LastUsed == nil {
		return "never"
	}
	return p.LastUsed.UTC().Format(time.DateOnly)
}

// offerPasskey adds the passkey to the ways a user can go on, first: in
// second-factor mode for a user who has one; in standalone mode for every
// name, so the list tells nobody who has one (SECURITY.md H37). A user who
// may add one during sign-in (enroll first_login) is offered the passkey
// page.
func (h *Handler) offerPasskey(ctx context.Context, acct *account, opts *signInOptions, v *view) error {
	if h.passkeys == nil {
		return nil
	}
	if acct.firstFactor == "" {
		opts.methods = slices.Insert(opts.methods, 0, methodPasskey)
		return nil
	}
	rec, err := acct.record(ctx)
	if err != nil {
		return err
	}
	switch {
	case len(rec.Passkeys) > 0:
		opts.methods = slices.Insert(opts.methods, 0, methodPasskey)
	case h.Passkey.Enroll == passkey.EnrollFirstLogin:
		v.PasskeyPage = h.passkeyPage()
	}
	return nil
}

// Actions of the account page on passkeys.
const (
	actionRenamePasskey = "rename_passkey"
	actionRemovePasskey = "remove_passkey"
)

// passkeyMethods are the user's passkeys as the account page lists them.
func (h *Handler) passkeyMethods(rec userRecord) []accountMethod {
	if h.passkeys == nil {
		return nil
	}
	out := make([]accountMethod, 0, len(rec.Passkeys))
	for _, p := range rec.Passkeys {
		i := p.info()
		added := i.Added.UTC()
		out = append(out, accountMethod{Kind: methodPasskey, ID: i.ID, Name: i.Name, Added: &added, LastUsed: i.LastUsed})
	}
	return out
}

// accountPasskey renames or removes a passkey from the account page
// (action rename_passkey or remove_passkey, id, name): with a factor
// passed recently, like ending sessions (mayEnd); a removal is notified
// and ends the user's other sessions, as any factor change does.
func (h *Handler) accountPasskey(w http.ResponseWriter, r *http.Request, c accountChange) error {
	s := c.s
	if h.passkeys == nil {
		return h.accountRefusal(w, r, s, http.StatusBadRequest, errCodeRequest, "Unknown action.")
	}
	if refusal := h.mayEnd(r, c); refusal != nil {
		return h.accountRefusal(w, r, s, refusal.status, refusal.Error, "Confirm it's you with a code first, then change your passkeys.")
	}
	ctx := r.Context()
	id, err := base64.RawURLEncoding.DecodeString(c.f.ID)
	if err != nil || len(id) == 0 {
		return h.accountRefusal(w, r, s, http.StatusBadRequest, errCodeRequest, "Choose a passkey.")
	}
	var ok bool
	msg := "The passkey was renamed."
	if c.f.Action == actionRemovePasskey {
		var p passkeyFactor
		if p, ok, err = h.passkeys.remove(ctx, s.User, id); err == nil && ok {
			h.factorChanged(w, r, factorChange{who: c.acct, event: authenticators.NoticeFactorRemoved, factor: methodPasskey, keep: s}, zap.String("passkey", p.Name))
		}
		msg = "The passkey was removed."
	} else {
		name, nerr := passkeyName(c.f.Name)
		if nerr != nil || name == "" {
			return h.accountRefusal(w, r, s, http.StatusBadRequest, errCodeRequest, "Give the passkey a name of at most 64 characters.")
		}
		if ok, err = h.passkeys.rename(ctx, s.User, id, name); err == nil && ok {
			h.audit.event(ctx, "passkey renamed", zap.String("user", s.User), zap.String("passkey", name))
		}
	}
	switch {
	case err != nil:
		return h.pages.unavailable(w, r, "changing passkey", err)
	case !ok:
		return h.accountRefusal(w, r, s, http.StatusNotFound, errCodeRequest, "That passkey no longer exists.")
	case c.f.Action == actionRemovePasskey && !wantsJSON(r):
		// The browser got a fresh session: its next page has the new
		// CSRF token.
		http.Redirect(w, r, h.PathPrefix+"/account", http.StatusSeeOther)
		return nil
	}
	v, err := h.accountView(r, s)
	if err != nil {
		return h.pages.unavailable(w, r, "reading account", err)
	}
	v.Message = msg
	return h.renderAccount(w, r, v)
}
