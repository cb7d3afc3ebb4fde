package caddymfa

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
	"github.com/caddymfa/caddy-mfa/storage"
)

// accountFreshness is how recent the factor of a session must be for it
// to end sessions or forget devices without giving a code again.
const accountFreshness = enrollFreshness

// The account page: its step, actions and error code.
const (
	stepAccount   = "account"
	stepSignedOut = "signed_out"

	actionEndSession   = "end_session"
	actionEndOthers    = "end_others"
	actionForgetDevice = "forget_device"
	// actionRecoveryCodes (enroll.go) makes new recovery codes here too.

	// errCodeReauth: the change needs a factor passed again (a session
	// made by a policy exemption, or one whose factor is not recent).
	errCodeReauth = "reauth_required"
)

// accountView is what the account page shows, and its JSON.
type accountView struct {
	Step string `json:"step"`
	User string `json:"user"`
	// Methods are the user's ways to sign in (accountMethods).
	Methods []accountMethod `json:"methods"`
	// RecoveryLeft is how many unused recovery codes the user has, when
	// they have an authenticator app.
	RecoveryLeft *int          `json:"recovery_codes_left,omitempty"`
	Sessions     []sessionInfo `json:"sessions"`
	Devices      []deviceInfo  `json:"devices"`
	// Fresh says the session passed a factor recently enough to end
	// sessions and forget devices without a code; otherwise Confirm is
	// where to pass one again (or send current_code with the change).
	Fresh   bool   `json:"fresh"`
	Confirm string `json:"confirm,omitempty"`
	// Enroll is the page of the authenticator app; Register links to
	// changing a phone number or an address, when users may.
	Enroll    string            `json:"enroll,omitempty"`
	Register  map[string]string `json:"register,omitempty"`
	CSRFToken string            `json:"csrf_token"`
	Error     string            `json:"error,omitempty"`
	Message   string            `json:"message,omitempty"`

	// PasskeyPage is where to add a passkey, when passkeys are on.
	PasskeyPage string `json:"passkey_page,omitempty"`

	status int
	prefix string
	hasApp bool // the user has an app, so new recovery codes can be made
}

// accountMethod is one way the user signs in: an address on file
// (masked), or an authenticator app and when it was added.
type accountMethod struct {
	Kind        string     `json:"kind"` // email, sms, totp, passkey
	Destination string     `json:"destination,omitempty"`
	Added       *time.Time `json:"added,omitempty"`
	// ID, Name and LastUsed are of a passkey.
	ID       string     `json:"id,omitempty"`
	Name     string     `json:"name,omitempty"`
	LastUsed *time.Time `json:"last_used,omitempty"`
}

// sessionInfo is a session as the account page and the admin API show
// it: a handle (never the cookie), the browser and system of its
// User-Agent, where it signed in, and when it was last seen.
type sessionInfo struct {
	ID      string `json:"id"`
	Current bool   `json:"current,omitempty"`
	Method  string `json:"method"`
	Host    string `json:"host,omitempty"`
	Browser string `json:"browser,omitempty"`
	System  string `json:"system,omitempty"`
	IP      string `json:"ip,omitempty"`
	Country string `json:"country,omitempty"`
	// Remembered: the browser is one of the user's remembered devices;
	// ending the session forgets it too.
	Remembered bool      `json:"remembered,omitempty"`
	Created    time.Time `json:"created"`
	LastSeen   time.Time `json:"last_seen"`
	Expires    time.Time `json:"expires"`

	name, seen string // for the page
}

// deviceInfo is a remembered device as the account page and the admin
// API show it; LastSeen is that of its latest session.
type deviceInfo struct {
	ID       string    `json:"id"`
	Current  bool      `json:"current,omitempty"`
	Browser  string    `json:"browser,omitempty"`
	System   string    `json:"system,omitempty"`
	IP       string    `json:"ip,omitempty"`
	Country  string    `json:"country,omitempty"`
	Created  time.Time `json:"created"`
	LastSeen time.Time `json:"last_seen"`
	Expires  time.Time `json:"expires"`

	name, seen string
}

// Name is the browser and system in words.
func (s sessionInfo) Name() string { return s.name }

// Seen says when the session was last seen, in words.
func (s sessionInfo) Seen() string { return s.seen }

// Name is the browser and system in words.
func (d deviceInfo) Name() string { return d.name }

// Seen says when the device was last seen, in words.
func (d deviceInfo) Seen() string { return d.seen }

// browserState is what identifies the browser asking: its session's store
// ID and the store ID of its remembered device ("" for none).
type browserState struct {
	session, device string
}

// browserOf is the state of the browser of r, whose session is s.
func (h *Handler) browserOf(r *http.Request, s *cachedSession) browserState {
	b := browserState{session: strings.TrimPrefix(s.storeKey, keySession), device: s.Device}
	if d := requestDevice(r, h.realm, h.keys); d != "" {
		b.device = d
	}
	return b
}

// sessionInfos lists a user's sessions and remembered devices, marking
// those of the browser b (zero for the admin API).
func (h *Handler) sessionInfos(ctx context.Context, user string, b browserState) ([]sessionInfo, []deviceInfo, error) {
	list, err := h.sessions.ofUser(ctx, user)
	if err != nil {
		return nil, nil, err
	}
	devs, err := h.devices.ofUser(ctx, user)
	if err != nil {
		return nil, nil, err
	}
	now := h.now()
	sessions := make([]sessionInfo, 0, len(list))
	lastOf := map[string]time.Time{}
	for _, s := range list {
		browser, system := describeUserAgent(s.UserAgent)
		info := sessionInfo{ID: handleOf(s.storeID), Current: b.session != "" && s.storeID == b.session, Method: s.Method, Host: s.Host,
			Browser: browser, System: system, IP: s.IP, Country: s.Country, Created: s.Created.UTC(), LastSeen: s.LastSeen.UTC(), Expires: s.Expires.UTC(),
			name: deviceName(s.UserAgent)}
		if info.Current {
			info.LastSeen = now.UTC()
		}
		info.seen = agoText(i18n.Builtin().English(), now, info.LastSeen)
		if s.Device != "" {
			for _, d := range devs {
				if d.storeID == s.Device {
					info.Remembered = true
					if info.LastSeen.After(lastOf[d.storeID]) {
						lastOf[d.storeID] = info.LastSeen
					}
				}
			}
		}
		sessions = append(sessions, info)
	}
	devices := make([]deviceInfo, 0, len(devs))
	for _, d := range devs {
		browser, system := describeUserAgent(d.UserAgent)
		info := deviceInfo{ID: handleOf(d.storeID), Current: b.device != "" && d.storeID == b.device, Browser: browser, System: system,
			IP: d.IP, Country: d.Country, Created: d.Created.UTC(), LastSeen: d.Created.UTC(), Expires: d.expires.UTC(), name: deviceName(d.UserAgent)}
		if t, ok := lastOf[d.storeID]; ok && t.After(info.LastSeen) {
			info.LastSeen = t
		}
		info.seen = agoText(i18n.Builtin().English(), now, info.LastSeen)
		devices = append(devices, info)
	}
	return sessions, devices, nil
}

// agoText says in l how long ago t was: "just now", "5 minutes ago",
// "3 hours ago", "2 days ago".
func agoText(l *i18n.Lang, now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return l.T("account.just_now")
	case d < time.Hour:
		return l.N("account.minutes_ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return l.N("account.hours_ago", int(d/time.Hour))
	}
	return l.N("account.days_ago", int(d/(24*time.Hour)))
}

// accountMethods lists the ways the user of acct signs in, for the
// account page: the addresses on file, masked, the authenticator app, and
// each passkey with its name, when it was added and last used
// (passkeyMethods); accountPasskey renames and removes them.
func (h *Handler) accountMethods(ctx context.Context, acct *account, rec userRecord) []accountMethod {
	out := []accountMethod{}
	for _, ch := range h.methods.channels() {
		if dest := acct.destination(ctx, ch.method); dest != "" {
			out = append(out, accountMethod{Kind: ch.method, Destination: ch.sender.Mask(dest)})
		}
	}
	if rec.TOTP != nil && h.TOTP != nil {
		added := rec.TOTP.Added.UTC()
		out = append(out, accountMethod{Kind: methodTOTP, Added: &added})
	}
	return append(out, h.passkeyMethods(rec)...)
}

// accountView builds the account page of the signed-in browser of r,
// whose session is s.
func (h *Handler) accountView(r *http.Request, s *cachedSession) (*accountView, error) {
	ctx := r.Context()
	acct := h.account(r, s.FirstFactor, s.User)
	rec, err := acct.record(ctx)
	if err != nil {
		return nil, err
	}
	v := &accountView{Step: stepAccount, User: s.User, CSRFToken: h.keys.csrfToken("s:" + requestSessionID(r, h.sessions)),
		prefix: h.PathPrefix, Methods: h.accountMethods(ctx, acct, rec)}
	if rec.TOTP != nil && h.TOTP != nil {
		left := len(rec.Recovery)
		v.RecoveryLeft = &left
		v.hasApp = true
	}
	if h.TOTP != nil {
		v.Enroll = h.PathPrefix + "/enroll/totp"
	}
	if s.FirstFactor != "" {
		v.Register = h.methods.registerLinks("")
	}
	v.PasskeyPage = h.passkeyPage()
	if v.Sessions, v.Devices, err = h.sessionInfos(ctx, s.User, h.browserOf(r, s)); err != nil {
		return nil, err
	}
	v.Fresh = s.factorWithin(h.now(), accountFreshness)
	if !v.Fresh {
		v.Confirm = h.PathPrefix + "/account/confirm"
	}
	return v, nil
}

// accountChange is a change asked for on the account page.
type accountChange struct {
	s       *cachedSession
	browser browserState
	acct    *account
	f       form
}

// accountAction carries out a change asked for on the account page and
// answers with the page (or JSON) as it is afterwards. Actions on
// passkeys (rename, remove) go to accountPasskey.
func (h *Handler) accountAction(w http.ResponseWriter, r *http.Request, f form, s *cachedSession) error {
	c := accountChange{s: s, browser: h.browserOf(r, s), acct: h.account(r, s.FirstFactor, s.User), f: f}
	switch f.Action {
	case actionRecoveryCodes:
		return h.renewRecoveryCodes(w, r, c)
	case actionRenamePasskey, actionRemovePasskey:
		return h.accountPasskey(w, r, c)
	case actionEndSession, actionEndOthers, actionForgetDevice:
	default:
		return h.accountRefusal(w, r, s, http.StatusBadRequest, errCodeRequest, "Unknown action.")
	}
	if refusal := h.mayEnd(r, c); refusal != nil {
		return h.accountRefusal(w, r, s, refusal.status, refusal.Error, refusal.Message)
	}
	ctx := r.Context()
	user := s.User
	var msg string
	switch f.Action {
	case actionEndSession, actionForgetDevice:
		if !validHandle(f.ID) {
			return h.accountRefusal(w, r, s, http.StatusBadRequest, errCodeRequest, "Choose a session or device to end.")
		}
		var ended, current bool
		var err error
		if f.Action == actionEndSession {
			ended, current, err = h.endSession(ctx, user, f.ID, c.browser)
			msg = "That session was ended. The browser has to sign in again."
		} else {
			ended, current, err = h.forgetDevice(ctx, user, f.ID, c.browser)
			msg = "That device was forgotten and signed out. It has to sign in with a code again."
		}
		if err != nil {
			return h.pages.unavailable(w, r, "ending session", err)
		}
		if !ended {
			return h.accountRefusal(w, r, s, http.StatusNotFound, errCodeNotFound, "That session or device has already ended.")
		}
		h.audit.event(ctx, "session ended from the account page", zap.String("user", user), zap.String("id", f.ID), zap.String("action", f.Action))
		h.notify(r, c.acct, authenticators.NoticeSessionsEnded, "", nil)
		if current {
			return h.signedOut(w, r)
		}
	case actionEndOthers:
		n, err := h.endOthers(ctx, user, c.browser)
		if err != nil {
			return h.pages.unavailable(w, r, "ending sessions", err)
		}
		h.audit.event(ctx, "other sessions ended from the account page", zap.String("user", user), zap.Int("ended", n))
		if n > 0 {
			h.notify(r, c.acct, authenticators.NoticeSessionsEnded, "", nil)
		}
		msg = "Every other session and remembered device was signed out."
	}
	v, err := h.accountView(r, s)
	if err != nil {
		return h.pages.unavailable(w, r, "reading account", err)
	}
	v.Message = msg
	return h.renderAccount(w, r, v)
}

// mayEnd says why the change c may not end sessions, or nil when it may:
// the session passed a factor in the last accountFreshness, or the
// request gives a valid code of the user's app (or a recovery code). A
// session made by a policy exemption passed no factor and may not
// (SECURITY.md N61).
func (h *Handler) mayEnd(r *http.Request, c accountChange) *view {
	reauth := errorView(http.StatusForbidden, errCodeReauth, "Confirm it's you with a code first, then end sessions.")
	switch {
	case !isFactor(c.s.Method):
		return reauth
	case c.s.factorWithin(h.now(), accountFreshness):
		return nil
	case c.f.CurrentCode == "" || h.TOTP == nil:
		return reauth
	}
	ok, err := h.proveCurrent(r, &enrollAuth{user: c.s.User, ff: c.s.FirstFactor, session: c.s, acct: c.acct}, c.f.CurrentCode)
	switch {
	case err != nil:
		h.logger.Error("checking current factor; denying", zap.Error(err))
		return errorView(http.StatusServiceUnavailable, errCodeUnavail, "Sign-in is unavailable right now. Try again in a minute.")
	case !ok:
		return errorView(http.StatusUnauthorized, errCodeInvalid, "That code is not valid.")
	}
	return nil
}

// endSession ends one of user's sessions by handle, and the remembered
// device of its browser, so that browser is asked for a code again.
// current says it was the session of the browser asking.
func (h *Handler) endSession(ctx context.Context, user, handle string, b browserState) (ended, current bool, err error) {
	list, err := h.sessions.ofUser(ctx, user)
	if err != nil {
		return false, false, err
	}
	for _, s := range list {
		if handleOf(s.storeID) != handle {
			continue
		}
		if err := h.sessions.endID(ctx, user, s.storeID); err != nil {
			return false, false, err
		}
		if s.Device != "" {
			if err := h.devices.forgetID(ctx, user, s.Device); err != nil {
				return true, false, err
			}
		}
		return true, s.storeID == b.session, nil
	}
	return false, false, nil
}

// forgetDevice forgets one of user's remembered devices by handle and
// ends the sessions of its browser. current says it was the device of
// the browser asking, or held its session.
func (h *Handler) forgetDevice(ctx context.Context, user, handle string, b browserState) (ended, current bool, err error) {
	devs, err := h.devices.ofUser(ctx, user)
	if err != nil {
		return false, false, err
	}
	for _, d := range devs {
		if handleOf(d.storeID) != handle {
			continue
		}
		if err := h.devices.forgetID(ctx, user, d.storeID); err != nil {
			return false, false, err
		}
		current = d.storeID == b.device
		list, err := h.sessions.ofUser(ctx, user)
		if err != nil {
			return true, current, err
		}
		for _, s := range list {
			if s.Device == d.storeID || current && s.storeID == b.session {
				if err := h.sessions.endID(ctx, user, s.storeID); err != nil {
					return true, current, err
				}
				current = current || s.storeID == b.session
			}
		}
		return true, current, nil
	}
	return false, false, nil
}

// endOthers ends every session of user but the browser b's and forgets
// every remembered device but b's. It returns how many it ended.
func (h *Handler) endOthers(ctx context.Context, user string, b browserState) (int, error) {
	list, err := h.sessions.ofUser(ctx, user)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range list {
		if s.storeID == b.session {
			continue
		}
		if err := h.sessions.endID(ctx, user, s.storeID); err != nil {
			return n, err
		}
		n++
	}
	devs, err := h.devices.ofUser(ctx, user)
	if err != nil {
		return n, err
	}
	for _, d := range devs {
		if d.storeID == b.device {
			continue
		}
		if err := h.devices.forgetID(ctx, user, d.storeID); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

// renewRecoveryCodes makes new recovery codes for a user with an app. It
// needs a code of the app (or a recovery code) however fresh the session,
// as the app's own page does, and never from a session made by a policy
// exemption (SECURITY.md N61); the user is notified.
func (h *Handler) renewRecoveryCodes(w http.ResponseWriter, r *http.Request, c accountChange) error {
	ctx := r.Context()
	rec, err := c.acct.record(ctx)
	if err != nil {
		return h.pages.unavailable(w, r, "reading user record", err)
	}
	if h.TOTP == nil || rec.TOTP == nil {
		return h.accountRefusal(w, r, c.s, http.StatusBadRequest, errCodeRequest, "Recovery codes come with an authenticator app, and none is set up.")
	}
	if !isFactor(c.s.Method) {
		return h.accountRefusal(w, r, c.s, http.StatusForbidden, errCodeReauth, "Confirm it's you with a code first, then make new recovery codes.")
	}
	auth := &enrollAuth{user: c.s.User, ff: c.s.FirstFactor, session: c.s, acct: c.acct, rec: rec}
	if ok, err := h.proveCurrent(r, auth, c.f.CurrentCode); err != nil {
		return h.pages.unavailable(w, r, "checking current factor", err)
	} else if !ok {
		return h.accountRefusal(w, r, c.s, http.StatusUnauthorized, errCodeInvalid, "That code is not valid. Enter the code your app shows now, or a recovery code.")
	}
	codes, hashes, err := newRecoveryCodes(h.RecoveryCodes, h.keys)
	if err != nil {
		return h.pages.unavailable(w, r, "making recovery codes", err)
	}
	err = h.users.update(ctx, c.s.User, func(cur *userRecord) (storage.Op, error) {
		if !sameApp(cur.TOTP, auth.rec.TOTP) {
			return storage.Keep, errFactorChanged
		}
		cur.Recovery = hashes
		return storage.WriteDurable, nil
	})
	if errors.Is(err, errFactorChanged) {
		return h.accountRefusal(w, r, c.s, http.StatusConflict, errCodeNotAllowed, "Your authenticator app was changed meanwhile. Reload the page.")
	}
	if err != nil {
		return h.pages.unavailable(w, r, "storing recovery codes", err)
	}
	h.notify(r, c.acct, authenticators.NoticeRecoveryCodesRenewed, methodRecovery, nil)
	return h.pages.render(w, r, &view{Step: stepRecoveryCodes, User: c.s.User, RecoveryCodes: codes, Redirect: h.PathPrefix + "/account"})
}

// accountRefusal answers a refused change with the account page and the
// reason (JSON: the page's fields, error and message); a browser gets a
// 303 to the account page, which says the reason once.
func (h *Handler) accountRefusal(w http.ResponseWriter, r *http.Request, s *cachedSession, status int, code, msg string) error {
	if !wantsJSON(r) {
		return h.accountNotice(w, r, errorView(status, code, msg))
	}
	v, err := h.accountView(r, s)
	if err != nil {
		return h.pages.unavailable(w, r, "reading account", err)
	}
	v.status, v.Error, v.Message = status, code, msg
	return h.renderAccount(w, r, v)
}

// signedOut answers a browser that ended its own session: its cookies
// go, and it is sent to the signed-out page.
func (h *Handler) signedOut(w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, h.realm.expired(r, cookieSession))
	http.SetCookie(w, h.realm.expired(r, cookieDevice))
	return h.toSignedOut(w, r, "")
}
