package caddymfa

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/storage"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// AdminAPI is the admin.api.mfa module: operations on the users of the
// mfa handlers in the running config, on Caddy's admin endpoint under
// /mfa/. Caddy loads every admin.api module by itself; there is nothing
// to configure.
//
//	GET  /mfa/sites                  the mfa handlers and their stores
//	GET  /mfa/users/<name>           a user's factors, lockout and sessions
//	POST /mfa/users/<name>/reset     {"factor": "totp"|"phone"|"email"}: remove the app and
//	                                 recovery codes, or the phone or address the user registered
//	POST /mfa/users/<name>/enroll    set up an authenticator app for the user (enroll off)
//	POST /mfa/users/<name>/unlock    end a lockout
//	GET  /mfa/users/<name>           ... with sessions and devices by id (a short handle)
//	POST /mfa/users/<name>/revoke    end every session and remembered device, or with
//	                                 {"session": "<id>"} or {"device": "<id>"} just that one
//	POST /mfa/test-email             {"to": "..."}: a test message through the transport
//	POST /mfa/test-sms               {"to": "+..."}: a test text through the provider
//	GET  /mfa/log                    the delivery log (?limit=&user=&method=&failed=true)
//
// With several sites, ?site= picks one by the host of its base_url or its
// store location, as /mfa/sites lists them.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.mfa",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes returns the admin routes.
func (a *AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/mfa/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// running are the provisioned mfa handlers, newest last. A reload
// provisions the new handlers before it cleans up the old ones, so for a
// moment both are here; the newest wins.
var running handlerRegistry

type handlerRegistry struct {
	mu       sync.Mutex
	handlers []*Handler
}

func (g *handlerRegistry) add(h *Handler) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.handlers = append(g.handlers, h)
}

func (g *handlerRegistry) remove(h *Handler) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.handlers = slices.DeleteFunc(g.handlers, func(x *Handler) bool { return x == h })
}

// siteInfo describes one site for the admin API.
type siteInfo struct {
	Site       string `json:"site"`
	Store      string `json:"store"`
	PathPrefix string `json:"path_prefix"`
	Email      bool   `json:"email"`
	SMS        bool   `json:"sms"`
	TOTP       bool   `json:"totp"`
	Policy     string `json:"policy"`
}

func siteInfoOf(h *Handler) siteInfo {
	si := siteInfo{Store: storeLocation(h.store), PathPrefix: h.PathPrefix, Email: h.Email != nil, SMS: h.SMS != nil, TOTP: h.TOTP != nil, Policy: h.Policy}
	if h.baseURL != nil {
		si.Site = h.baseURL.Host
	}
	return si
}

func storeLocation(s storage.Store) string {
	if l, ok := s.(storage.Locator); ok {
		return l.Location()
	}
	return fmt.Sprintf("%T", s)
}

// sites lists one entry per site and store, newest handler first.
func (g *handlerRegistry) sites() ([]siteInfo, []*Handler) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var infos []siteInfo
	var hs []*Handler
	for i := len(g.handlers) - 1; i >= 0; i-- {
		h := g.handlers[i]
		si := siteInfoOf(h)
		if slices.ContainsFunc(infos, func(o siteInfo) bool { return o.Site == si.Site && o.Store == si.Store }) {
			continue
		}
		infos = append(infos, si)
		hs = append(hs, h)
	}
	return infos, hs
}

// pick finds the handler an admin request means.
func (g *handlerRegistry) pick(site string) (*Handler, error) {
	infos, hs := g.sites()
	if len(hs) == 0 {
		return nil, adminError(http.StatusNotFound, "no mfa handler is running")
	}
	if site == "" {
		if len(hs) == 1 || allSameStore(infos) {
			return hs[0], nil
		}
		return nil, adminError(http.StatusBadRequest, "several mfa sites are running; choose one with ?site= (%s)", siteNames(infos))
	}
	for i, si := range infos {
		if strings.EqualFold(si.Site, site) || si.Store == site {
			return hs[i], nil
		}
	}
	return nil, adminError(http.StatusNotFound, "no mfa site %q (%s)", site, siteNames(infos))
}

func allSameStore(infos []siteInfo) bool {
	for _, si := range infos[1:] {
		if si.Store != infos[0].Store {
			return false
		}
	}
	return true
}

func siteNames(infos []siteInfo) string {
	var names []string
	for _, si := range infos {
		if si.Site != "" {
			names = append(names, si.Site)
		} else {
			names = append(names, si.Store)
		}
	}
	return strings.Join(names, ", ")
}

func adminError(status int, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return caddy.APIError{HTTPStatus: status, Err: errors.New(msg), Message: msg}
}

// serve routes the admin requests under /mfa/.
func (a *AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	path := strings.Trim(strings.TrimPrefix(r.URL.Path, "/mfa"), "/")
	parts := strings.Split(path, "/")
	if path == "sites" {
		if err := onlyMethod(r, http.MethodGet); err != nil {
			return err
		}
		infos, _ := running.sites()
		return writeAdminJSON(w, infos)
	}
	h, err := running.pick(r.URL.Query().Get("site"))
	if err != nil {
		return err
	}
	switch {
	case path == "log":
		if err := onlyMethod(r, http.MethodGet); err != nil {
			return err
		}
		return a.log(w, r, h)
	case path == "test-email" || path == "test-sms":
		if err := onlyMethod(r, http.MethodPost); err != nil {
			return err
		}
		return a.testMessage(w, r, h, strings.TrimPrefix(path, "test-"))
	case len(parts) >= 2 && parts[0] == "users":
		user, ok := h.dir.userName(parts[1])
		if !ok {
			return adminError(http.StatusBadRequest, "invalid user name %q", parts[1])
		}
		action := strings.Join(parts[2:], "/")
		if action == "" {
			if err := onlyMethod(r, http.MethodGet); err != nil {
				return err
			}
			return a.user(w, r, h, user)
		}
		if err := onlyMethod(r, http.MethodPost); err != nil {
			return err
		}
		return a.userAction(w, r, h, user, action)
	}
	return adminError(http.StatusNotFound, "no mfa admin endpoint %q", r.URL.Path)
}

func onlyMethod(r *http.Request, method string) error {
	if r.Method != method {
		return adminError(http.StatusMethodNotAllowed, "%s %s: use %s", r.Method, r.URL.Path, method)
	}
	return nil
}

func writeAdminJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// userReport is what the admin API shows of a user. It holds no secret:
// no session ID, no TOTP secret, no recovery code.
type userReport struct {
	User              string       `json:"user"`
	Email             string       `json:"email,omitempty"`
	Phone             string       `json:"phone,omitempty"`
	RegisteredEmail   string       `json:"registered_email,omitempty"`
	RegisteredPhone   string       `json:"registered_phone,omitempty"`
	TOTP              *totpReport  `json:"totp,omitempty"`
	RecoveryCodesLeft int          `json:"recovery_codes_left"`
	LastMethod        string       `json:"last_method,omitempty"`
	KnownPlaces       []knownPlace `json:"known_places,omitempty"`
	Failures          int          `json:"failures"`
	LockedUntil       *time.Time   `json:"locked_until,omitempty"`
	// NetworkLocks are the user's failures and locks per client network
	// (standalone mode).
	NetworkLocks []networkLock `json:"network_locks,omitempty"`
	// Throttles are the user's active send caps and cooldowns.
	Throttles []throttleReport `json:"throttles"`
	// Sessions and Devices are named by a handle (id), the start of the
	// hash they are stored under: never a cookie value.
	Sessions          []sessionInfo `json:"sessions"`
	Devices           []deviceInfo  `json:"devices"`
	RememberedDevices int           `json:"remembered_devices"`
	// Passkeys are the user's passkeys: name, when added and last used.
	Passkeys []passkeyInfo `json:"passkeys,omitempty"`
}

type totpReport struct {
	Added time.Time `json:"added"`
}

// user reports a user's factors, lockout, sessions and devices.
func (a *AdminAPI) user(w http.ResponseWriter, r *http.Request, h *Handler, user string) error {
	ctx := r.Context()
	rec, err := h.users.load(ctx, user)
	if err != nil {
		return adminError(http.StatusServiceUnavailable, "reading user record: %v", err)
	}
	rep := userReport{User: user, Email: h.dir.emailFor(user), Phone: h.dir.phoneFor(user), RegisteredEmail: rec.Email, RegisteredPhone: rec.Phone, RecoveryCodesLeft: len(rec.Recovery), LastMethod: rec.LastMethod, KnownPlaces: rec.Known}
	if rec.TOTP != nil {
		rep.TOTP = &totpReport{Added: rec.TOTP.Added}
	}
	if len(rec.Passkeys) > 0 {
		rep.Passkeys = passkeyInfos(rec.Passkeys)
	}
	lock, err := h.lockout.report(ctx, user)
	if err != nil {
		return adminError(http.StatusServiceUnavailable, "%v", err)
	}
	rep.Failures, rep.LockedUntil, rep.NetworkLocks = lock.Failures, lock.LockedUntil, lock.Networks
	if rep.Throttles, err = h.throttle.report(ctx, h.userThrottle(user, rec)); err != nil {
		return adminError(http.StatusServiceUnavailable, "%v", err)
	}
	if rep.Sessions, rep.Devices, err = h.sessionInfos(ctx, user, browserState{}); err != nil {
		return adminError(http.StatusServiceUnavailable, "listing sessions: %v", err)
	}
	rep.RememberedDevices = len(rep.Devices)
	return writeAdminJSON(w, rep)
}

// userAction resets a factor, enrolls an app, unlocks or revokes.
func (a *AdminAPI) userAction(w http.ResponseWriter, r *http.Request, h *Handler, user, action string) error {
	ctx := r.Context()
	result := map[string]any{"user": user, "action": action}
	// The user as notices see them: no first factor, so no address
	// from one.
	who := h.users.account(principal{user: user})
	switch action {
	case "reset":
		var body struct {
			Factor string `json:"factor"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
			return adminError(http.StatusBadRequest, "reading body: %v", err)
		}
		if body.Factor == "" {
			body.Factor = methodTOTP
		}
		factor, ok := map[string]string{"totp": methodTOTP, "phone": methodSMS, "email": methodEmail}[body.Factor]
		if !ok {
			return adminError(http.StatusBadRequest, "reset: unknown factor %q (totp, phone, email)", body.Factor)
		}
		had, err := h.users.resetFactor(ctx, user, factor)
		if err != nil {
			return adminError(http.StatusServiceUnavailable, "resetting: %v", err)
		}
		result["removed"] = had
		adminAudit(h, r, "admin: factor reset", userField(user), zap.String("factor", factor), zap.Bool("removed", had))
		if had {
			h.factorChanged(nil, r, factorChange{who: who, event: authenticators.NoticeFactorRemoved, factor: factor, byAdmin: true})
		} else if err := h.devices.forgetUser(ctx, user); err != nil {
			return adminError(http.StatusServiceUnavailable, "forgetting devices: %v", err)
		}
	case "enroll":
		return a.enroll(w, r, h, user, who)
	case "unlock":
		if err := h.lockout.unlock(ctx, user); err != nil {
			return adminError(http.StatusServiceUnavailable, "unlocking: %v", err)
		}
		rec, err := h.users.load(ctx, user)
		if err != nil {
			return adminError(http.StatusServiceUnavailable, "reading user record: %v", err)
		}
		if err := h.throttle.clearUser(ctx, h.userThrottle(user, rec)); err != nil {
			return adminError(http.StatusServiceUnavailable, "unlocking: %v", err)
		}
		adminAudit(h, r, "admin: user unlocked", userField(user))
	case "revoke":
		one, err := readRevoke(r)
		if err != nil {
			return err
		}
		if one.Session != nil || one.Device != nil {
			return a.revokeOne(w, r, h, user, one)
		}
		n, err := h.sessions.revokeUser(ctx, user)
		if err != nil {
			return adminError(http.StatusServiceUnavailable, "revoking sessions: %v", err)
		}
		if err := h.devices.forgetUser(ctx, user); err != nil {
			return adminError(http.StatusServiceUnavailable, "forgetting devices: %v", err)
		}
		result["sessions_revoked"] = n
		adminAudit(h, r, "admin: sessions revoked", userField(user), zap.Int("sessions", n))
	default:
		return adminError(http.StatusNotFound, "unknown user action %q (enroll, reset, unlock, revoke)", action)
	}
	return writeAdminJSON(w, result)
}

// resetFactor removes a user's app and recovery codes (totp), or the
// phone or address they registered, and reports whether there was one.
func (u *users) resetFactor(ctx context.Context, user, factor string) (bool, error) {
	var had bool
	err := u.update(ctx, user, func(rec *userRecord) (storage.Op, error) {
		switch factor {
		case methodTOTP:
			had = rec.TOTP != nil || len(rec.Recovery) > 0
			rec.TOTP, rec.Recovery = nil, nil
		case methodSMS:
			had, rec.Phone = rec.Phone != "", ""
		case methodEmail:
			had, rec.Email = rec.Email != "", ""
		}
		if rec.LastMethod == factor || factor == methodTOTP && rec.LastMethod == methodRecovery {
			rec.LastMethod = ""
		}
		return storage.WriteDurable, nil
	})
	return had, err
}

// enroll sets up an authenticator app for a user, as enroll off leaves
// to administrators: it answers the secret, the otpauth URI and its QR
// code (a PNG data URI) and new recovery codes, once, for the
// administrator to hand over. An app the user has is replaced; the
// user's sessions end and they are notified, as for any factor change.
func (a *AdminAPI) enroll(w http.ResponseWriter, r *http.Request, h *Handler, user string, who *account) error {
	if h.TOTP == nil {
		return adminError(http.StatusBadRequest, "this site has no totp block")
	}
	secret, err := totp.NewSecret()
	if err != nil {
		return adminError(http.StatusInternalServerError, "making a secret: %v", err)
	}
	sealed, err := totp.Seal(h.keys.totp, secret)
	if err != nil {
		return adminError(http.StatusInternalServerError, "sealing the secret: %v", err)
	}
	codes, hashes, err := newRecoveryCodes(h.RecoveryCodes, h.keys)
	if err != nil {
		return adminError(http.StatusInternalServerError, "making recovery codes: %v", err)
	}
	uri := totp.URI(h.TOTP, h.methods.issuer(), user, secret)
	png, err := totp.QRPNG(uri, qrSize)
	if err != nil {
		return adminError(http.StatusInternalServerError, "drawing the qr code: %v", err)
	}
	var replaced bool
	err = h.users.update(r.Context(), user, func(rec *userRecord) (storage.Op, error) {
		replaced = rec.TOTP != nil
		rec.TOTP = &totpFactor{Secret: sealed, LastStep: totp.NoStep, Added: h.now()}
		rec.Recovery = hashes
		return storage.WriteDurable, nil
	})
	if err != nil {
		return adminError(http.StatusServiceUnavailable, "storing the app: %v", err)
	}
	adminAudit(h, r, "admin: app enrolled", userField(user), zap.Bool("replaced", replaced))
	h.factorChanged(nil, r, factorChange{who: who, event: authenticators.NoticeFactorAdded, factor: methodTOTP, byAdmin: true})
	w.Header().Set("Cache-Control", "no-store")
	return writeAdminJSON(w, map[string]any{
		"user":           user,
		"secret":         totp.GroupSecret(secret),
		"otpauth_uri":    uri,
		"qr_png":         "data:image/png;base64," + base64.StdEncoding.EncodeToString(png),
		"recovery_codes": codes,
		"replaced":       replaced,
	})
}

// testSender is a channel that can send a test message.
type testSender interface {
	SendTest(ctx context.Context, to, site string) error
	Mask(to string) string
}

// testMessage sends a test message by email or SMS and reports what the
// transport or provider said.
func (a *AdminAPI) testMessage(w http.ResponseWriter, r *http.Request, h *Handler, method string) error {
	ch, ok := h.methods.channel(method)
	if !ok {
		return adminError(http.StatusBadRequest, "this site has no %s block", method)
	}
	sender, ok := ch.sender.(testSender)
	if !ok {
		return adminError(http.StatusNotImplemented, "the %s block cannot send a test message", method)
	}
	var body struct {
		To string `json:"to"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&body); err != nil || body.To == "" {
		return adminError(http.StatusBadRequest, `want a JSON body {"to": "..."}`)
	}
	site := ""
	if h.baseURL != nil {
		site = h.baseURL.Hostname()
	}
	start := time.Now()
	err := sender.SendTest(r.Context(), body.To, site)
	adminAudit(h, r, "admin: test "+method, zap.String("to", sender.Mask(body.To)), zap.Bool("ok", err == nil))
	res := map[string]any{"method": method, "to": sender.Mask(body.To), "ok": err == nil, "latency": time.Since(start).String()}
	if err != nil {
		res["error"] = err.Error()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadGateway)
		return json.NewEncoder(w).Encode(res)
	}
	return writeAdminJSON(w, res)
}

// log returns the delivery log, newest first, filtered.
func (a *AdminAPI) log(w http.ResponseWriter, r *http.Request, h *Handler) error {
	q := r.URL.Query()
	limit := 100
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLogEntries {
			return adminError(http.StatusBadRequest, "limit must be 1..%d", maxLogEntries)
		}
		limit = n
	}
	f, err := readLogFilter(q, h.dir.userName)
	if err != nil {
		return err
	}
	entries, err := h.dlog.entries(r.Context(), 0)
	if err != nil {
		return adminError(http.StatusServiceUnavailable, "reading delivery log: %v", err)
	}
	out := []authenticators.DeliveryResult{}
	for _, e := range entries {
		if (f.user != "" && e.User != f.user) || (f.method != "" && e.Method != f.method) || (f.failed && e.OK) {
			continue
		}
		if out = append(out, e); len(out) == limit {
			break
		}
	}
	return writeAdminJSON(w, out)
}

// logFilter is what GET /mfa/log keeps: "" or false keeps all.
type logFilter struct {
	user, method string
	failed       bool
}

// readLogFilter reads the filters of GET /mfa/log. A filter that does not
// parse is refused (SECURITY.md N64): dropping it would answer with every
// user's entries.
// userName is the directory's form of a name (directory.userName).
func readLogFilter(q url.Values, userName func(string) (string, bool)) (logFilter, error) {
	var f logFilter
	if q.Has("user") {
		user, ok := userName(q.Get("user"))
		if !ok {
			return f, adminError(http.StatusBadRequest, "invalid user name %q", q.Get("user"))
		}
		f.user = user
	}
	if q.Has("method") {
		switch f.method = q.Get("method"); f.method {
		case methodEmail, methodSMS:
		default:
			return f, adminError(http.StatusBadRequest, "method must be email or sms")
		}
	}
	if q.Has("failed") {
		b, err := strconv.ParseBool(q.Get("failed"))
		if err != nil {
			return f, adminError(http.StatusBadRequest, "failed must be true or false")
		}
		f.failed = b
	}
	return f, nil
}

// adminAudit writes the audit event of an administrator's action, with the
// address the admin API request came from.
func adminAudit(h *Handler, r *http.Request, msg string, fields ...zap.Field) {
	h.audit.event(r.Context(), msg, append(fields, zap.String("admin_remote", r.RemoteAddr))...)
}

// Interface guards
var _ caddy.AdminRouter = (*AdminAPI)(nil)

// userThrottle names the throttles of user: their name and the addresses
// on file, in the directory or registered.
func (h *Handler) userThrottle(user string, rec userRecord) userThrottle {
	id := h.keys.storeID(lockName(user))
	u := userThrottle{userID: id, destKeys: []string{"u:" + id}}
	for _, d := range []string{h.dir.emailFor(user), h.dir.phoneFor(user), rec.Email, rec.Phone} {
		if d != "" {
			u.destKeys = append(u.destKeys, h.keys.storeID(d))
		}
	}
	return u
}

// revokeBody is the optional body of POST /mfa/users/<name>/revoke: one
// session or one remembered device, by the id the user report shows.
type revokeBody struct {
	Session *string `json:"session"`
	Device  *string `json:"device"`
}

// readRevoke reads the body of a revoke. An id that is not one is
// refused, never widened into "all" (SECURITY.md N64).
func readRevoke(r *http.Request) (revokeBody, error) {
	var body revokeBody
	if err := json.NewDecoder(io.LimitReader(r.Body, maxBody)).Decode(&body); err != nil && !errors.Is(err, io.EOF) {
		return body, adminError(http.StatusBadRequest, "reading body: %v", err)
	}
	for _, id := range []*string{body.Session, body.Device} {
		if id != nil && !validHandle(*id) {
			return body, adminError(http.StatusBadRequest, "invalid id %q: want the %d-character id that caddy mfa users shows", *id, handleLen)
		}
	}
	if body.Session != nil && body.Device != nil {
		return body, adminError(http.StatusBadRequest, "revoke one session or one device, not both")
	}
	return body, nil
}

// revokeOne ends one session of a user, with the remembered device of its
// browser, or forgets one remembered device, with its sessions.
func (a *AdminAPI) revokeOne(w http.ResponseWriter, r *http.Request, h *Handler, user string, one revokeBody) error {
	var ended bool
	var err error
	var id, what string
	if one.Session != nil {
		id, what = *one.Session, "session"
		ended, _, err = h.endSession(r.Context(), user, id, browserState{})
	} else {
		id, what = *one.Device, "device"
		ended, _, err = h.forgetDevice(r.Context(), user, id, browserState{})
	}
	if err != nil {
		return adminError(http.StatusServiceUnavailable, "revoking %s: %v", what, err)
	}
	if !ended {
		return adminError(http.StatusNotFound, "%s has no %s %s (caddy mfa users %s lists them)", user, what, id, user)
	}
	adminAudit(h, r, "admin: "+what+" revoked", zap.String("user", user), zap.String("id", id))
	return writeAdminJSON(w, map[string]any{"user": user, "action": "revoke", what: id, "revoked": true})
}
