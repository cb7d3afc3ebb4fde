package caddymfa

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
	"github.com/caddymfa/caddy-mfa/storage"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Defaults, and the limits of SECURITY.md J43.
const (
	defaultUser        = "{http.auth.user.id}"
	defaultPathPrefix  = "/.mfa"
	defaultSessionTTL  = 12 * time.Hour
	defaultIdleTimeout = time.Hour
	defaultLockouts    = 10
	defaultLockWindow  = 15 * time.Minute
	// In standalone mode: the user-wide lockout, over all networks.
	defaultUserLockouts   = 100
	defaultUserLockWindow = 24 * time.Hour
	maxLockouts           = 100
	flowTTL               = 30 * time.Minute
	maxBody               = 64 << 10
)

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mfa",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision sets defaults, opens the store, resolves the secret key and
// starts the email authenticator.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.now = time.Now
	repl := caddy.NewReplacer()

	if h.User == nil {
		u := defaultUser
		h.User = &u
	}
	if h.PathPrefix == "" {
		h.PathPrefix = defaultPathPrefix
	}
	h.PathPrefix = "/" + strings.Trim(h.PathPrefix, "/")
	if h.SessionTTL == 0 {
		h.SessionTTL = caddy.Duration(defaultSessionTTL)
	}
	if h.IdleTimeout == 0 {
		h.IdleTimeout = caddy.Duration(defaultIdleTimeout)
	}
	if h.Lockout == nil {
		h.Lockout = &Lockout{}
	}
	if h.Lockout.Failures == 0 {
		h.Lockout.Failures = defaultLockouts
	}
	if h.Lockout.Window == 0 {
		h.Lockout.Window = caddy.Duration(defaultLockWindow)
	}
	if h.Lockout.UserFailures == 0 {
		h.Lockout.UserFailures = max(defaultUserLockouts, h.Lockout.Failures)
	}
	if h.Lockout.UserWindow == 0 {
		h.Lockout.UserWindow = caddy.Duration(max(defaultUserLockWindow, time.Duration(h.Lockout.Window)))
	}
	if h.BaseURL != "" {
		u, err := url.Parse(h.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return fmt.Errorf("base_url %q: want an absolute http(s) URL such as https://app.example.com", h.BaseURL)
		}
		h.baseURL = u
	}
	h.methods = newMethods(h.Email, h.SMS, h.TOTP, h.baseURL, h.PathPrefix)
	if err := h.provisionPasskey(); err != nil {
		return err
	}
	if err := h.methods.checkLinkMode(); err != nil {
		return err
	}

	h.Policy = strings.ToLower(strings.TrimSpace(h.Policy))
	if h.Policy == "" {
		h.Policy = policyAlways
	}
	pol, err := newPolicy(h.Policy, h.TrustedNetworks, repl.ReplaceKnown(h.GeoIPDB, ""))
	if err != nil {
		return err
	}
	h.policy = pol
	if srv, ok := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok && srv != nil && srv.TrustedProxiesStrict == 0 &&
		(len(h.TrustedNetworks) > 0 || h.Policy == policyNewIP || h.Policy == policyNewCountry) {
		h.logger.Warn("trusted_networks and the places of policy new_ip and new_country use the connection's address or, behind trusted_proxies, the rightmost X-Forwarded-For entry that is not a trusted proxy; without trusted_proxies_strict, Caddy's client_ip in access logs is the leftmost entry, which the client writes, and may differ")
	}

	dir, err := newDirectory(h.Users, repl.ReplaceKnown(h.UsersFile, ""), h.AllowEmails, *h.User != "")
	if err != nil {
		return err
	}
	h.dir = dir
	if err := h.provisionRealm(ctx); err != nil {
		return err
	}

	if h.catalog, err = i18n.Load(repl.ReplaceKnown(h.Translations, "")); err != nil {
		return err
	}
	if h.brand, err = loadBrand(repl.ReplaceKnown(h.SiteName, ""), repl.ReplaceKnown(h.Logo, ""),
		repl.ReplaceKnown(h.CSS, ""), repl.ReplaceKnown(h.Templates, "")); err != nil {
		return err
	}

	if h.StorageRaw == nil {
		h.StorageRaw = json.RawMessage(`{"backend":"badger"}`)
	}
	mod, err := ctx.LoadModule(h, "StorageRaw")
	if err != nil {
		return fmt.Errorf("loading storage: %w", err)
	}
	store, ok := mod.(storage.Store)
	if !ok {
		return fmt.Errorf("storage module %T does not implement storage.Store", mod)
	}
	h.store = store

	secret := repl.ReplaceKnown(h.SecretKey, "")
	if h.SecretKey != "" && secret == "" {
		return fmt.Errorf("secret_key %q resolved to an empty value", h.SecretKey)
	}
	if err := checkSecret(secret); err != nil {
		return err
	}

	h.pending = new(sync.WaitGroup)
	if h.metrics, err = registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	// The delivery log reaches the challenges through h, so it follows
	// a rewiring.
	h.dlog = &deliveryLog{store: h.store, logger: h.logger, max: maxLogEntries, failed: func(ctx context.Context, cid string) { h.challenges.markFailed(ctx, cid) }, metrics: h.metrics}
	h.dlog.start()
	if h.Email != nil {
		if err := h.Email.Provision(ctx, h.dlog.record); err != nil {
			return fmt.Errorf("provisioning email: %w", err)
		}
	}
	if h.SMS != nil {
		if err := h.SMS.Provision(ctx, h.dlog.record); err != nil {
			return fmt.Errorf("provisioning sms: %w", err)
		}
	}
	h.methods.build(h.Email, h.SMS)
	if h.TOTP != nil {
		h.TOTP.ApplyDefaults()
		h.TOTP.Issuer = repl.ReplaceKnown(h.TOTP.Issuer, "")
		if h.RecoveryCodes == 0 {
			h.RecoveryCodes = totp.MinRecoveryCodes
		}
	}
	// The secret key may live in the store, which opens only when Caddy
	// starts the config: provisioning alone writes nothing.
	h.starting, err = storage.OnStart(ctx, func() error { return h.start(ctx, secret) })
	return err
}

// start loads the secret key, builds the state services over it and
// makes the handler known to the admin API. The mfa app runs it when
// Caddy starts the config; a request that comes first runs it (ready).
func (h *Handler) start(ctx context.Context, secret string) error {
	key, err := loadSecret(ctx, h.store, secret)
	if err != nil {
		return err
	}
	h.keys = newKeyring(key)
	h.wire()
	running.add(h)
	return nil
}

// ready starts the handler if Caddy has not yet: Caddy starts its apps in
// no set order, so a request can come before the mfa app started.
func (h *Handler) ready() error {
	if h.starting.Done() {
		return nil
	}
	if err := h.starting.Run(); err != nil {
		h.logger.Error("starting mfa handler", zap.Error(err))
		return caddyhttp.Error(http.StatusServiceUnavailable, err)
	}
	return nil
}

// wire builds the state services over the store, the keys, the clock
// and the logger: Provision calls it once; a test that swaps the store,
// the clock or the logger calls it again.
func (h *Handler) wire() {
	clock := h.now
	h.audit = auditor{logger: h.logger.Named("audit")}
	h.lockout = &lockout{store: h.store, now: clock, failures: h.Lockout.Failures, window: time.Duration(h.Lockout.Window),
		perNetwork: h.standalone(), userFailures: h.Lockout.UserFailures, userWindow: time.Duration(h.Lockout.UserWindow)}
	h.throttle = &throttle{store: h.store, now: clock, metrics: h.metrics}
	h.sessions = &sessions{realm: h.realm, gate: h.gate, store: h.store, keys: h.keys, now: clock, logger: h.logger, cache: newSessionCache(maxCachedSessions),
		ttl: time.Duration(h.SessionTTL), idle: time.Duration(h.IdleTimeout)}
	h.devices = &devices{realm: h.realm, store: h.store, keys: h.keys, now: clock, ttl: time.Duration(h.RememberDevice)}
	h.wireIndexes(clock)
	h.users = &users{store: h.store, dir: h.dir, methods: h.methods, logger: h.logger}
	h.challenges = &challenges{realm: h.realm, store: h.store, keys: h.keys, now: clock, logger: h.logger, metrics: h.metrics,
		throttle: h.throttle, linkURL: h.methods.linkURL, pending: h.pending}
	h.verifier = &verifier{lockout: h.lockout, challenges: h.challenges, users: h.users, sessions: h.sessions, devices: h.devices,
		methods: h.methods, keys: h.keys, now: clock, metrics: h.metrics, logger: h.logger, audit: h.audit}
	h.registrations = &registrations{realm: h.realm, store: h.store, keys: h.keys, now: clock}
	h.apps = &pendingApps{realm: h.realm, store: h.store, keys: h.keys, now: clock, totp: h.TOTP}
	h.flows = flows{realm: h.realm, keys: h.keys, now: clock}
	h.policy.wire(h.devices, h.users, clock, h.logger, h.audit)
	h.notices = &notices{methods: h.methods, now: clock, logger: h.logger, audit: h.audit}
	if h.passkeyRP != nil {
		h.passkeys = &passkeys{store: h.store, keys: h.keys, now: clock, rp: h.passkeyRP, users: h.users, standalone: h.standalone(),
			passwordless: h.Passkey.Passwordless, enroll: h.Passkey.Enroll, logger: h.logger, audit: h.audit}
	}
	h.pages = &pages{prefix: h.PathPrefix, methods: h.methods, keys: h.keys, logger: h.logger, cat: h.catalog, brand: h.brand}
	if h.RememberDevice > 0 {
		h.pages.rememberDays = max(1, int(time.Duration(h.RememberDevice)/(24*time.Hour)))
	}
}

// loadSecret returns the configured secret key, or the key generated for
// this store on first use.
func loadSecret(ctx context.Context, store storage.Store, configured string) ([]byte, error) {
	if configured != "" {
		if err := checkSecret(configured); err != nil {
			return nil, err
		}
		return []byte(configured), nil
	}
	var key []byte
	err := store.Update(ctx, keySecret, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		if found && len(cur.Value) >= minSecretKeyLen {
			key = cur.Value
			return nil, time.Time{}, storage.Keep, nil
		}
		key = make([]byte, 48)
		if _, err := rand.Read(key); err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		return key, time.Time{}, storage.Write, nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading generated secret key: %w", err)
	}
	return key, nil
}

// checkSecret refuses a configured secret key that is too short; ""
// means the key is generated and kept in the store.
func checkSecret(configured string) error {
	if configured != "" && len(configured) < minSecretKeyLen {
		return fmt.Errorf("secret_key is %d bytes; it must be at least %d (e.g. the output of 'openssl rand -base64 48')", len(configured), minSecretKeyLen)
	}
	return nil
}

// Validate checks the configuration without changing it.
func (h *Handler) Validate() error {
	if h.Lockout.Failures < 1 || h.Lockout.Failures > maxLockouts {
		return fmt.Errorf("lockout: %d failures is outside 1..%d", h.Lockout.Failures, maxLockouts)
	}
	if h.Lockout.UserFailures < h.Lockout.Failures || h.Lockout.UserFailures > maxLockouts {
		return fmt.Errorf("lockout: %d user-wide failures is outside %d..%d (the failures per network up to the ceiling)", h.Lockout.UserFailures, h.Lockout.Failures, maxLockouts)
	}
	if time.Duration(h.Lockout.UserWindow) < time.Duration(h.Lockout.Window) {
		return fmt.Errorf("lockout: the user-wide window must be at least the window")
	}
	if time.Duration(h.Lockout.Window) <= 0 {
		return fmt.Errorf("lockout: window must be positive")
	}
	if h.SessionTTL < 0 || h.IdleTimeout < 0 {
		return fmt.Errorf("session_ttl and idle_timeout must be positive")
	}
	if *h.User == "" && h.dir.empty() {
		return fmt.Errorf("user is empty (standalone sign-in) but there are no users, users_file or allow_emails to sign in")
	}
	if h.Email == nil && h.SMS == nil && h.TOTP == nil && h.Passkey == nil {
		return fmt.Errorf("no authenticator is configured: add an email, sms, totp or passkey block")
	}
	if err := h.checkReachable(); err != nil {
		return err
	}
	if h.SMS != nil {
		if err := h.SMS.Validate(); err != nil {
			return fmt.Errorf("sms: %w", err)
		}
	}
	address := ""
	if h.Email != nil {
		if err := h.Email.Validate(); err != nil {
			return fmt.Errorf("email: %w", err)
		}
		if h.Email.Address != "" && *h.User == "" {
			return fmt.Errorf("email: address reads the address from the first factor, but user is empty (standalone): remove address or configure a first factor")
		}
		address = h.Email.Address
	}
	if err := h.methods.validateTOTP(*h.User == "", h.RecoveryCodes); err != nil {
		return err
	}
	if err := h.policy.validate(*h.User == "", len(h.TrustedNetworks) > 0, h.RememberDevice); err != nil {
		return err
	}
	if err := h.methods.validateRegistration(); err != nil {
		return err
	}
	if err := h.checkGate(); err != nil {
		return err
	}
	for _, p := range []string{*h.User, address} {
		if strings.Contains(p, "{http.request.header.") && !h.TrustIdentityHeaders {
			h.logger.Warn("identity read from a request header; it is used only when the request comes from a trusted proxy (set trust_identity_headers to override)", zap.String("placeholder", p))
		}
	}
	return nil
}

// Cleanup stops the authenticators. The store module is cleaned up by
// Caddy, which loaded it.
func (h *Handler) Cleanup() error {
	h.starting.Stop()
	running.remove(h)
	if h.pending != nil {
		h.pending.Wait() // deliveries about to be queued
	}
	var errs []error
	if h.Email != nil {
		errs = append(errs, h.Email.Cleanup())
	}
	if h.SMS != nil {
		errs = append(errs, h.SMS.Cleanup())
	}
	if h.policy != nil && h.policy.geo != nil {
		errs = append(errs, h.policy.geo.Close())
	}
	if h.dlog != nil {
		// After the channels: their last results are written.
		h.dlog.close()
	}
	return errors.Join(errs...)
}

// ServeHTTP serves the flow under PathPrefix and lets any other request
// through only with a valid session.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if err := h.ready(); err != nil {
		return err
	}
	if p := r.URL.Path; p == h.PathPrefix || strings.HasPrefix(p, h.PathPrefix) && p[len(h.PathPrefix)] == '/' {
		return h.serveFlow(w, r)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	ff, ok := h.firstFactor(r, repl)
	if !ok {
		return deny(h.logger, r)
	}
	s, ok, short, err := h.sessions.checkStep(r.Context(), h.realm.read(r, cookieSession), ff, r.Host)
	if err != nil {
		// The store is down: deny without asking a signed-in user to sign
		// in again (SECURITY.md A9).
		return h.pages.render(w, r, errorView(http.StatusServiceUnavailable, errCodeUnavail, "Sign-in is unavailable right now. Try again in a minute."))
	}
	if ok && !short {
		repl.Set("http.auth.mfa.user", s.userValue)
		repl.Set("http.auth.mfa.method", s.methodValue)
		if ff == "" {
			repl.Set("http.auth.user.id", s.userValue)
		}
		h.realm.strip(r)
		return next.ServeHTTP(w, r)
	}
	if ok {
		// Valid in the realm, not good enough here (SECURITY.md K50).
		return h.stepUp(w, r)
	}
	// A handler that asks for a verified factor lets no exemption
	// through: an exemption is no factor (SECURITY.md N61).
	if !h.gate.strict() {
		var device string
		if h.RememberDevice > 0 {
			device, _ = deviceToken(r, h.realm, h.keys)
		}
		if method, ok := h.policy.skip(r.Context(), ff, clientIP(r), device); ok {
			h.metrics.skip(method)
			return h.passWithoutChallenge(w, r, next, repl, ff, method)
		}
	}
	return h.challengeRedirect(w, r)
}

// passWithoutChallenge lets a request through that the policy exempts
// from the challenge. A browser let through by a remembered device or a
// known place also gets a session, so the check is not repeated on every
// request.
func (h *Handler) passWithoutChallenge(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler, repl *caddy.Replacer, ff, method string) error {
	repl.Set("http.auth.mfa.user", ff)
	repl.Set("http.auth.mfa.method", method)
	if method != skipTrustedNetwork && method != skipNever && isNavigation(r) {
		if c, err := newSessionCookie(r, h.sessions, ff, ff, method); err != nil {
			h.logger.Error("storing session", zap.Error(err))
		} else {
			http.SetCookie(w, c)
		}
	}
	if c := h.logger.Check(zapcore.DebugLevel, "challenge skipped"); c != nil {
		c.Write(userField(ff), zap.String("rule", method), zap.String("client_ip", clientIP(r)))
	}
	h.realm.strip(r)
	return next.ServeHTTP(w, r)
}

// isNavigation reports whether a browser is loading a page.
func isNavigation(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// standalone reports whether the handler asks visitors who they are
// (user ""), rather than taking the user from a first factor.
func (h *Handler) standalone() bool {
	return h.User != nil && *h.User == ""
}

// guessNetwork is the client network that verifications and sends count
// in, in standalone mode; "" in second-factor mode, where failures and
// caps count per user (lockout.go, throttle.go).
func (h *Handler) guessNetwork(r *http.Request) string {
	if !h.standalone() {
		return ""
	}
	return clientNetwork(clientIP(r))
}

// firstFactor returns the first-factor user exactly as the first factor
// gave it (SECURITY.md K51): "" in standalone mode (user ""). ok is false
// when the request must be denied: the user placeholder is unresolved or
// empty, it reads a client header from an untrusted client (SECURITY.md
// D22, D23), or the name is not one a user can have (exactUser).
func (h *Handler) firstFactor(r *http.Request, repl *caddy.Replacer) (string, bool) {
	raw := *h.User
	if raw == "" {
		return "", true
	}
	if !identityTrusted(r, raw, h.TrustIdentityHeaders) {
		return "", false
	}
	v := resolve(repl, raw)
	if strings.TrimSpace(v) == "" || v == raw {
		// Unresolved: deny. Falling back to the standalone flow here
		// would turn two factors into one whenever the first factor is
		// missing from a route; standalone mode is only ever chosen
		// explicitly, with user "".
		return "", false
	}
	return exactUser(v)
}

// replacer is the request's replacer; an empty one when there is none,
// which resolves no placeholder and so denies.
func replacer(r *http.Request) *caddy.Replacer {
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		return repl
	}
	return caddy.NewReplacer()
}

// account is the account of user, who signs in after the first-factor
// user ff, with the address the first factor supplies (email.address,
// second-factor mode only, trusted like the user placeholder).
func (h *Handler) account(r *http.Request, ff, user string) *account {
	p := principal{firstFactor: ff, user: user}
	if ff != "" && h.Email != nil && h.Email.Address != "" && identityTrusted(r, h.Email.Address, h.TrustIdentityHeaders) {
		if v := replacer(r).ReplaceKnown(h.Email.Address, ""); v != h.Email.Address {
			if addr, err := email.ParseAddress(v); err == nil {
				p.address = addr
			}
		}
	}
	return h.users.account(p)
}

// resolve expands a placeholder. The usual case, one whole placeholder
// such as {http.auth.user.id}, is a lookup without building a string.
func resolve(repl *caddy.Replacer, raw string) string {
	if len(raw) > 2 && raw[0] == '{' && raw[len(raw)-1] == '}' && !strings.ContainsAny(raw[1:len(raw)-1], "{}") {
		if v, ok := repl.GetString(raw[1 : len(raw)-1]); ok {
			return v
		}
	}
	return repl.ReplaceKnown(raw, "")
}

// identityTrusted reports whether a placeholder may be resolved for this
// request: one that reads a request header is trusted only from a trusted
// proxy, since any client can send Remote-User (Caddy CVE-2026-30851).
func identityTrusted(r *http.Request, placeholder string, trustHeaders bool) bool {
	if trustHeaders || !strings.Contains(placeholder, "{http.request.header.") {
		return true
	}
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	return trusted
}

// deny answers a request that cannot start the flow at all.
func deny(logger *zap.Logger, r *http.Request) error {
	if c := logger.Check(zapcore.DebugLevel, "denied: no first-factor user"); c != nil {
		c.Write(zap.String("path", r.URL.Path))
	}
	return caddyhttp.Error(http.StatusUnauthorized, errors.New("mfa: no first-factor user"))
}

// msgMFARequired is the message of the mfa_required answer.
const msgMFARequired = "Multi-factor authentication is required."

// challengeRedirect sends browsers to the sign-in page and everything else
// a 401 JSON error, its message in the user's language, so scripts never
// receive an HTML login page.
func (h *Handler) challengeRedirect(w http.ResponseWriter, r *http.Request) error {
	prefix := h.PathPrefix
	if isNavigation(r) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, prefix+"/?return="+url.QueryEscape(r.URL.RequestURI()), http.StatusFound)
		return nil
	}
	return writeJSON(w, http.StatusUnauthorized, map[string]any{
		"error":    "mfa_required",
		"message":  localize(h.pages.requestLang(r), msgMFARequired, nil),
		"redirect": prefix + "/",
	})
}

// handlerState is what Provision builds; kept apart from the JSON config.
type handlerState struct {
	logger  *zap.Logger
	now     func() time.Time
	baseURL *url.URL
	dir     *directory
	store   storage.Store
	keys    keyring
	dlog    *deliveryLog
	pending *sync.WaitGroup // standalone deliveries not yet queued
	metrics *metricSet
	methods *methods
	policy  *policy
	realm   *realm
	gate    *gate

	// The state services (wire).
	audit         auditor
	lockout       *lockout
	throttle      *throttle
	sessions      *sessions
	devices       *devices
	users         *users
	challenges    *challenges
	verifier      *verifier
	apps          *pendingApps
	registrations *registrations
	notices       *notices
	flows         flows
	pages         *pages
	passkeyRP     *relyingParty
	passkeys      *passkeys
	catalog       *i18n.Catalog
	brand         *brand

	// starting runs start once (storage.OnStart).
	starting *storage.Start
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
