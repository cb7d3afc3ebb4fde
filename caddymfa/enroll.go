package caddymfa

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/storage"
)

// Enrollment bounds.
const (
	// pendingEnrollTTL is how long a shown secret waits for its first
	// code.
	pendingEnrollTTL = 10 * time.Minute
	// maxEnrollTries wrong first codes drop the shown secret.
	maxEnrollTries = 5
	// enrollFreshness is how recent a sign-in must be to add an app from
	// a session: a session cookie stolen hours later cannot add one.
	enrollFreshness = 15 * time.Minute
	// maxEnrollStarts caps new secrets per user per hour, so a client
	// cannot fill the store with pending enrollments.
	maxEnrollStarts = 20
	// qrSize is the side of the QR code image, in pixels.
	qrSize = 264
)

// Steps and actions of enrollment.
const (
	stepEnrollTOTP    = "enroll_totp"
	stepTOTPSettings  = "totp_settings"
	stepRecoveryCodes = "recovery_codes"
	stepNotice        = "notice"

	actionConfirm       = "confirm"
	actionRemove        = "remove"
	actionRecoveryCodes = "recovery_codes"

	errCodeNotAllowed = "not_allowed"
)

// pendingEnrollment is a secret shown to a user and not yet confirmed
// (SECURITY.md C19). It exists only server-side, under a key bound to the
// flow or session that was shown it, until the first valid code or its
// TTL.
type pendingEnrollment struct {
	// Realm is the realm of the flow or session shown the secret
	// (SECURITY.md K49).
	Realm  string `json:"rl"`
	User   string `json:"u"`
	Secret string `json:"s"` // sealed
	Tries  int    `json:"n"`
}

// enrollAuth is who is changing their authenticator app, and on what
// authority: a session, or (enroll first_login) a sign-in flow that has
// passed the first factor.
type enrollAuth struct {
	user      string
	ff        string
	flow      *flowState // set for an enrollment during sign-in
	sessionID string     // set for an enrollment from a session
	session   *cachedSession
	fresh     bool       // the session was made by a factor passed recently
	acct      *account   // the user, as the address lookup sees them
	rec       userRecord // the user's record when the request came
}

// exempt reports whether the authority is a session made by a policy
// exemption (a remembered device, a known place), which proves no factor
// and so may not change one (SECURITY.md N61).
func (a *enrollAuth) exempt() bool {
	return a.session != nil && !isFactor(a.session.Method)
}

// binding names the flow or session a pending secret and the CSRF token
// belong to.
func (a *enrollAuth) binding() string {
	if a.flow != nil {
		return "f:" + a.flow.ID
	}
	return "s:" + a.sessionID
}

// serveEnroll serves GET and POST {path_prefix}/enroll/totp.
func (h *Handler) serveEnroll(w http.ResponseWriter, r *http.Request) error {
	if h.TOTP == nil {
		return caddyhttp.Error(http.StatusNotFound, errors.New("totp is not configured"))
	}
	post := r.Method == http.MethodPost
	if !post && r.Method != http.MethodGet && r.Method != http.MethodHead {
		return methodNotAllowed(w, "GET, HEAD, POST")
	}
	f, ff, refusal := h.readPage(w, r)
	if refusal != nil {
		return h.pages.render(w, r, refusal)
	}
	auth, err := h.enrollAuthority(r, ff)
	if err != nil {
		return h.pages.unavailable(w, r, "reading user record", err)
	}
	if auth == nil {
		v := errorView(http.StatusForbidden, errCodeNotAllowed, "Sign in first, then set up your authenticator app.")
		v.Redirect = h.PathPrefix + "/"
		return h.pages.render(w, r, v)
	}
	ret := f.Return
	if !post {
		ret = r.URL.Query().Get("return")
	}
	ret, _ = h.realm.safeReturn(ret, h.PathPrefix)
	if auth.flow != nil {
		ret = auth.flow.Return
	}
	if auth.exempt() {
		if post && wantsJSON(r) {
			return h.pages.render(w, r, errorView(http.StatusForbidden, errCodeNotAllowed, "Confirm it's you with a code first, then change your authenticator app."))
		}
		if post {
			// The page of the form asks for a factor first.
			http.Redirect(w, r, h.enrollURL(ret, false), http.StatusSeeOther)
			return nil
		}
		return h.confirmFirst(w, r, ff, "enroll/totp", "app", ret, factorMethods)
	}
	if !post {
		return h.enrollPage(w, r, auth, ret)
	}
	if !h.keys.validCSRF(auth.binding(), f.CSRFToken) {
		return h.enrollRefused(w, r, auth, errorView(http.StatusForbidden, errCodeCSRF, "This page has expired. Reload it and try again."), ret, (f.Action == "" || f.Action == actionConfirm) && auth.rec.TOTP != nil)
	}
	switch f.Action {
	case "", actionConfirm:
		return h.confirmEnroll(w, r, f, auth, ret)
	case actionRemove, actionRecoveryCodes:
		return h.changeApp(w, r, f, auth, ret)
	}
	return h.enrollRefused(w, r, auth, errorView(http.StatusBadRequest, errCodeRequest, "Unknown action."), ret, false)
}

// readPage reads what the enrollment and registration pages share: for a
// POST the size-limited form and the same-origin check, then the
// first-factor user. A non-nil refusal is the answer to send instead.
func (h *Handler) readPage(w http.ResponseWriter, r *http.Request) (f form, ff string, refusal *view) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		var err error
		if f, err = readForm(r); err != nil {
			return f, "", errorView(http.StatusBadRequest, errCodeRequest, "The request could not be read.")
		}
		if !sameOrigin(r, h.baseURL) {
			return f, "", errorView(http.StatusForbidden, errCodeCSRF, "This form was sent from another site.")
		}
	}
	ff, ok := h.firstFactor(r, replacer(r))
	if !ok {
		return f, "", errorView(http.StatusUnauthorized, errCodeNoUser, "Sign in with your first factor first.")
	}
	return f, ff, nil
}

// enrollAuthority works out who may enroll with this request: the user of
// a valid session, or the user of a sign-in flow when enroll is
// first_login and they have no app yet. nil means nobody.
func (h *Handler) enrollAuthority(r *http.Request, ff string) (*enrollAuth, error) {
	var auth *enrollAuth
	if s, ok := requestSession(r, h.sessions, ff); ok {
		auth = &enrollAuth{user: s.User, ff: s.FirstFactor, sessionID: requestSessionID(r, h.sessions), session: s, fresh: s.factorWithin(h.now(), enrollFreshness)}
	} else if flow := h.flows.read(r, ff); flow != nil && flow.FirstFactor != "" && h.TOTP.Enroll == totp.EnrollFirstLogin {
		auth = &enrollAuth{user: flow.user(), ff: flow.FirstFactor, flow: flow}
	} else {
		return nil, nil
	}
	auth.acct = h.account(r, auth.ff, auth.user)
	rec, err := auth.acct.record(r.Context())
	if err != nil {
		return nil, err
	}
	if auth.flow != nil && rec.TOTP != nil {
		return nil, nil // trust on first use only
	}
	auth.rec = rec
	return auth, nil
}

// mayEnroll says why auth may not set up an app now, or nil when it may.
// A first app needs enroll first_login (during sign-in) or a recent
// sign-in with another factor (enroll verified); replacing an app needs a
// code of the current one, asked for on the page.
func mayEnroll(enroll string, auth *enrollAuth) *view {
	switch {
	case enroll == totp.EnrollOff:
		return errorView(http.StatusForbidden, errCodeNotAllowed, "Only an administrator can set up an authenticator app for your account.")
	case auth.exempt():
		return errorView(http.StatusForbidden, errCodeNotAllowed, "Confirm it's you with a code first, then change your authenticator app.")
	case auth.flow == nil && auth.rec.TOTP == nil && !auth.fresh:
		return errorView(http.StatusForbidden, errCodeNotAllowed, "For your security, sign out and sign in again to set up an authenticator app.")
	}
	return nil
}

// enrollView is the enrollment page: the settings of an app the user
// has, or the QR code and secret of a new one.
func (h *Handler) enrollView(r *http.Request, auth *enrollAuth, ret string, replace bool) *view {
	v := &view{CSRFToken: h.keys.csrfToken(auth.binding()), Return: ret, User: auth.user, Redirect: orRoot(ret)}
	if auth.rec.TOTP != nil && !replace {
		v.Step = stepTOTPSettings
		v.AppAdded = auth.rec.TOTP.Added.UTC().Format(time.DateOnly)
		left := len(auth.rec.Recovery)
		v.RecoveryLeft = &left
		v.RecoveryUsed = auth.session != nil && auth.session.Method == methodRecovery
		if h.TOTP.Enroll != totp.EnrollOff {
			v.Enroll = h.PathPrefix + "/enroll/totp?replace=1&return=" + url.QueryEscape(ret)
		}
		return v
	}
	if no := mayEnroll(h.TOTP.Enroll, auth); no != nil {
		no.Redirect = v.Redirect
		return no
	}
	secret, err := h.apps.secret(r.Context(), auth.binding(), auth.user)
	var te *throttledError
	switch {
	case errors.As(err, &te):
		no := errorView(http.StatusTooManyRequests, errCodeThrottled, "Too many setups were started.")
		no.retry = te.retryAfter
		return no
	case err != nil:
		h.logger.Error("starting enrollment; denying", zap.Error(err))
		return errorView(http.StatusServiceUnavailable, errCodeUnavail, "Sign-in is unavailable right now. Try again in a minute.")
	}
	uri := totp.URI(h.TOTP, h.methods.issuer(), auth.user, secret)
	png, err := totp.QRPNG(uri, qrSize)
	if err != nil {
		h.logger.Error("drawing qr code", zap.Error(err))
		return errorView(http.StatusInternalServerError, errCodeUnavail, "The QR code could not be drawn.")
	}
	v.Step = stepEnrollTOTP
	v.QRCode = "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
	v.Secret = totp.GroupSecret(secret)
	v.OTPAuthURI = uri
	v.NeedsCurrent = auth.rec.TOTP != nil
	v.Skip = auth.flow == nil && auth.rec.TOTP == nil
	if auth.flow != nil {
		v.back = h.PathPrefix + "/?method=choose"
	} else if auth.rec.TOTP != nil {
		v.back = h.PathPrefix + "/enroll/totp?return=" + url.QueryEscape(ret)
	}
	return v
}

// confirmEnroll makes the shown secret the user's app once a code from it
// is valid, and answers with new recovery codes. Replacing an app needs a
// code of the current one (or a recovery code) first.
func (h *Handler) confirmEnroll(w http.ResponseWriter, r *http.Request, f form, auth *enrollAuth, ret string) error {
	ctx := r.Context()
	if no := mayEnroll(h.TOTP.Enroll, auth); no != nil {
		return h.enrollRefused(w, r, auth, no, ret, false)
	}
	if auth.rec.TOTP != nil {
		if ok, err := h.proveCurrent(r, auth, f.CurrentCode); err != nil {
			return h.pages.unavailable(w, r, "checking current factor", err)
		} else if !ok {
			return h.enrollRefused(w, r, auth, invalid(h.enrollView(r, auth, ret, true), "The code of your current app or the recovery code is not valid."), ret, true)
		}
	}
	sealed, step, ok, err := h.apps.take(ctx, auth.binding(), auth.user, f.Code)
	if err != nil {
		return h.pages.unavailable(w, r, "checking enrollment code", err)
	}
	if !ok {
		return h.enrollRefused(w, r, auth, invalid(h.enrollView(r, auth, ret, auth.rec.TOTP != nil), "That code is not valid. Enter the code your app shows now; if the page was open for long, scan the new QR code."), ret, auth.rec.TOTP != nil)
	}
	codes, hashes, err := newRecoveryCodes(h.RecoveryCodes, h.keys)
	if err != nil {
		return h.pages.unavailable(w, r, "making recovery codes", err)
	}
	now := h.now()
	err = h.users.update(ctx, auth.user, func(rec *userRecord) (storage.Op, error) {
		if !sameApp(rec.TOTP, auth.rec.TOTP) {
			return storage.Keep, errFactorChanged
		}
		rec.TOTP = &totpFactor{Secret: sealed, LastStep: step, Added: now}
		rec.Recovery = hashes
		rec.LastMethod = methodTOTP
		return storage.WriteDurable, nil
	})
	if errors.Is(err, errFactorChanged) {
		return h.enrollRefused(w, r, auth, errorView(http.StatusConflict, errCodeNotAllowed, "Your authenticator app was changed meanwhile. Reload the page."), ret, false)
	}
	if err != nil {
		return h.pages.unavailable(w, r, "storing authenticator app", err)
	}
	h.factorChanged(w, r, factorChange{who: auth.acct, event: authenticators.NoticeFactorAdded, factor: methodTOTP, keep: auth.session}, zap.Bool("replaced", auth.rec.TOTP != nil))
	if auth.flow != nil {
		// Enrolled during sign-in: the valid code signs the user in.
		c, err := newSessionCookie(r, h.sessions, auth.flow.FirstFactor, auth.user, methodTOTP)
		if err != nil {
			return h.pages.unavailable(w, r, "storing session", err)
		}
		h.audit.event(r.Context(), "sign-in succeeded", userField(auth.user), zap.String("method", methodTOTP))
		http.SetCookie(w, c)
		http.SetCookie(w, h.flows.expired(r))
	}
	return h.pages.render(w, r, &view{Step: stepRecoveryCodes, User: auth.user, RecoveryCodes: codes, Redirect: orRoot(ret)})
}

// changeApp removes the user's app or renews their recovery codes; both
// need a code of the app or a recovery code.
func (h *Handler) changeApp(w http.ResponseWriter, r *http.Request, f form, auth *enrollAuth, ret string) error {
	if auth.rec.TOTP == nil || auth.flow != nil {
		return h.enrollRefused(w, r, auth, errorView(http.StatusBadRequest, errCodeRequest, "No authenticator app is set up."), ret, false)
	}
	if auth.exempt() {
		return h.enrollRefused(w, r, auth, errorView(http.StatusForbidden, errCodeNotAllowed, "Confirm it's you with a code first, then change your authenticator app."), ret, false)
	}
	remove := f.Action == actionRemove
	if remove && h.TOTP.Enroll == totp.EnrollOff {
		return h.enrollRefused(w, r, auth, errorView(http.StatusForbidden, errCodeNotAllowed, "Only an administrator can remove your authenticator app."), ret, false)
	}
	if ok, err := h.proveCurrent(r, auth, f.CurrentCode); err != nil {
		return h.pages.unavailable(w, r, "checking current factor", err)
	} else if !ok {
		v := h.enrollView(r, auth, ret, false)
		v.status, v.Error, v.Message = http.StatusUnauthorized, errCodeInvalid, "That code is not valid."
		return h.enrollRefused(w, r, auth, v, ret, false)
	}
	var codes []string
	var hashes [][]byte
	if !remove {
		var err error
		if codes, hashes, err = newRecoveryCodes(h.RecoveryCodes, h.keys); err != nil {
			return h.pages.unavailable(w, r, "making recovery codes", err)
		}
	}
	err := h.users.update(r.Context(), auth.user, func(rec *userRecord) (storage.Op, error) {
		if !sameApp(rec.TOTP, auth.rec.TOTP) {
			return storage.Keep, errFactorChanged
		}
		if remove {
			rec.TOTP = nil
			if rec.LastMethod == methodTOTP {
				rec.LastMethod = ""
			}
		}
		rec.Recovery = hashes
		return storage.WriteDurable, nil
	})
	if errors.Is(err, errFactorChanged) {
		return h.enrollRefused(w, r, auth, errorView(http.StatusConflict, errCodeNotAllowed, "Your authenticator app was changed meanwhile. Reload the page."), ret, false)
	}
	if err != nil {
		return h.pages.unavailable(w, r, "changing authenticator app", err)
	}
	if remove {
		h.factorChanged(w, r, factorChange{who: auth.acct, event: authenticators.NoticeFactorRemoved, factor: methodTOTP, keep: auth.session})
		return h.pages.render(w, r, &view{Step: stepNotice, Message: "Your authenticator app and its recovery codes were removed.", Redirect: orRoot(ret)})
	}
	h.notify(r, auth.acct, authenticators.NoticeRecoveryCodesRenewed, methodRecovery, nil)
	return h.pages.render(w, r, &view{Step: stepRecoveryCodes, User: auth.user, RecoveryCodes: codes, Redirect: orRoot(ret)})
}

// proveCurrent checks a code of the user's app, or a recovery code, in
// the user's lockout; a recovery code used here is spent and notified.
func (h *Handler) proveCurrent(r *http.Request, auth *enrollAuth, input string) (bool, error) {
	out, err := h.verifier.current(r.Context(), auth.user, h.guessNetwork(r), input)
	if err != nil || !out.ok {
		return false, err
	}
	if out.method == methodRecovery {
		h.notify(r, auth.acct, authenticators.NoticeRecoveryCodeUsed, methodRecovery, nil, zap.Int("recovery_codes_left", out.recoveryLeft))
		// The record changed; later checks compare against the new one.
		rec, err := auth.acct.reload(r.Context())
		if err != nil {
			return false, err
		}
		auth.rec = rec
	}
	return true, nil
}

// invalid marks an enrollment page shown again after a wrong code,
// unless the page is itself a refusal.
func invalid(v *view, msg string) *view {
	if v.Error == "" {
		v.status, v.Error, v.Message = http.StatusUnauthorized, errCodeInvalid, msg
	}
	return v
}

// newRecoveryCodes makes a set of recovery codes and their keyed hashes.
func newRecoveryCodes(n int, keys keyring) ([]string, [][]byte, error) {
	codes, err := totp.NewRecoveryCodes(n)
	if err != nil {
		return nil, nil, err
	}
	hashes := make([][]byte, len(codes))
	for i, c := range codes {
		if hashes[i], err = totp.HashRecoveryCode(keys.totp, c); err != nil {
			return nil, nil, fmt.Errorf("hashing recovery code: %w", err)
		}
	}
	return codes, hashes, nil
}

// sameApp reports whether two records hold the same app (or none).
func sameApp(a, b *totpFactor) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Secret == b.Secret
}

func orRoot(path string) string {
	if path == "" {
		return "/"
	}
	return path
}

// pendingApps owns the secrets shown on enrollment pages and not yet
// confirmed (enroll/<binding hash>), and their per-user start cap.
type pendingApps struct {
	realm *realm
	store storage.Store
	keys  keyring
	now   func() time.Time
	totp  *totp.Config
}

func (pa *pendingApps) key(binding string) string {
	return keyEnroll + pa.keys.storeID("enroll\x00"+pa.realm.name+"\x00"+binding)
}

// secret returns the secret shown to this flow or session (binding),
// making one when there is none (or it was for another user, or used up
// its tries). Reloading the page shows the same secret until it expires.
func (pa *pendingApps) secret(ctx context.Context, binding, user string) (string, error) {
	key := pa.key(binding)
	rec, err := pa.store.Get(ctx, key)
	switch {
	case err == nil:
		if p, err := decodeRecord[pendingEnrollment](rec.Value); err == nil && p.Realm == pa.realm.name && p.User == user && p.Tries < maxEnrollTries {
			if secret, err := totp.Open(pa.keys.totp, p.Secret); err == nil {
				return secret, nil
			}
		}
	case !errors.Is(err, storage.ErrNotFound):
		return "", err
	}
	now := pa.now()
	hour := now.Truncate(time.Hour)
	n, err := pa.store.Incr(ctx, keyThrottle+"enroll/"+pa.keys.storeID(lockName(user))+"/"+strconv.FormatInt(hour.Unix(), 10), 1, hour.Add(time.Hour))
	if err != nil {
		return "", err
	}
	if n > maxEnrollStarts {
		return "", &throttledError{scope: "enroll", retryAfter: hour.Add(time.Hour).Sub(now)}
	}
	secret, err := totp.NewSecret()
	if err != nil {
		return "", err
	}
	sealed, err := totp.Seal(pa.keys.totp, secret)
	if err != nil {
		return "", err
	}
	b, err := encodeRecord(pendingEnrollment{Realm: pa.realm.name, User: user, Secret: sealed})
	if err != nil {
		return "", err
	}
	return secret, pa.store.Put(ctx, key, b, now.Add(pendingEnrollTTL), false)
}

// take checks the first code of the pending secret. A valid code
// consumes the pending record and returns the sealed secret and the step
// it matched; a wrong one counts a try.
func (pa *pendingApps) take(ctx context.Context, binding, user, code string) (sealed string, step int64, ok bool, err error) {
	now := pa.now()
	err = pa.store.Update(ctx, pa.key(binding), func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		sealed, step, ok = "", 0, false
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		p, err := decodeRecord[pendingEnrollment](cur.Value)
		if err != nil || p.Realm != pa.realm.name || p.User != user || p.Tries >= maxEnrollTries {
			return nil, time.Time{}, storage.Delete, nil
		}
		secret, err := totp.Open(pa.keys.totp, p.Secret)
		if err != nil {
			return nil, time.Time{}, storage.Delete, nil
		}
		s, match, err := pa.totp.Verify(secret, now, code, totp.NoStep)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		if match {
			sealed, step, ok = p.Secret, s, true
			return nil, time.Time{}, storage.Delete, nil
		}
		p.Tries++
		b, err := encodeRecord(p)
		return b, cur.ExpiresAt, storage.Write, err
	})
	return sealed, step, ok, err
}
