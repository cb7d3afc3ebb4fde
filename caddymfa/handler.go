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

	"github.com/caddymfa/caddy-mfa/authenticators/totp"
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
	maxLockouts        = 100
	flowTTL            = 30 * time.Minute
	maxBody            = 64 << 10
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
	if h.BaseURL != "" {
		u, err := url.Parse(h.BaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
			return fmt.Errorf("base_url %q: want an absolute http(s) URL such as https://app.example.com", h.BaseURL)
		}
		h.baseURL = u
	}
	if err := h.checkLinkMode(); err != nil {
		return err
	}

	if err := h.provisionPolicy(repl); err != nil {
		return err
	}

	dir, err := newDirectory(h.Users, repl.ReplaceKnown(h.UsersFile, ""), h.AllowEmails)
	if err != nil {
		return err
	}
	h.dir = dir

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
	key, err := h.loadSecret(ctx, secret)
	if err != nil {
		return err
	}
	h.keys = newKeyring(key)

	h.sessions = newSessionCache(maxCachedSessions)
	h.pending = new(sync.WaitGroup)
	if h.metrics, err = registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	h.dlog = &deliveryLog{store: h.store, logger: h.logger, max: maxLogEntries, failed: h.markFailed, metrics: h.metrics}
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
	if h.TOTP != nil {
		h.TOTP.ApplyDefaults()
		h.TOTP.Issuer = repl.ReplaceKnown(h.TOTP.Issuer, "")
		if h.RecoveryCodes == 0 {
			h.RecoveryCodes = totp.MinRecoveryCodes
		}
	}
	running.add(h)
	return nil
}

// loadSecret returns the configured secret key, or the key generated for
// this store on first use.
func (h *Handler) loadSecret(ctx context.Context, configured string) ([]byte, error) {
	if configured != "" {
		if len(configured) < minSecretKeyLen {
			return nil, fmt.Errorf("secret_key is %d bytes; it must be at least %d (e.g. the output of 'openssl rand -base64 48')", len(configured), minSecretKeyLen)
		}
		return []byte(configured), nil
	}
	var key []byte
	err := h.store.Update(ctx, keySecret, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
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

// Validate checks the configuration without changing it.
func (h *Handler) Validate() error {
	if h.Lockout.Failures < 1 || h.Lockout.Failures > maxLockouts {
		return fmt.Errorf("lockout: %d failures is outside 1..%d", h.Lockout.Failures, maxLockouts)
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
	if h.Email == nil && h.SMS == nil && h.TOTP == nil {
		return fmt.Errorf("no authenticator is configured: add an email, sms or totp block")
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
	if err := h.validateTOTP(); err != nil {
		return err
	}
	if err := h.validatePolicy(); err != nil {
		return err
	}
	if err := h.validateRegistration(); err != nil {
		return err
	}
	for _, p := range []string{*h.User, address} {
		if strings.Contains(p, "{http.request.header.") && !h.TrustIdentityHeaders {
			h.logger.Warn("identity read from a request header; it is used only when the request comes from a trusted proxy (set trust_identity_headers to override)", zap.String("placeholder", p))
		}
	}
	return nil
}

// validateTOTP checks the totp block and how it fits the rest.
func (h *Handler) validateTOTP() error {
	if h.TOTP == nil {
		return nil
	}
	if err := h.TOTP.Validate(); err != nil {
		return err
	}
	if h.issuer() == "" {
		return fmt.Errorf("totp: set issuer or base_url: authenticator apps show it next to the code, and it is never taken from the request's Host")
	}
	if h.RecoveryCodes < totp.MinRecoveryCodes || h.RecoveryCodes > totp.MaxRecoveryCodes {
		return fmt.Errorf("recovery_codes: %d is outside %d..%d", h.RecoveryCodes, totp.MinRecoveryCodes, totp.MaxRecoveryCodes)
	}
	switch {
	case h.TOTP.Enroll == totp.EnrollFirstLogin && *h.User == "":
		return fmt.Errorf("totp: enroll first_login trusts the first factor, but user is empty (standalone), so there is none: anyone could enroll for any name. Use enroll verified with an email block, or configure a first factor")
	case h.TOTP.Enroll == totp.EnrollVerified && h.Email == nil && h.SMS == nil:
		return fmt.Errorf("totp: enroll verified lets users add an app after passing another factor, but no email block is configured: add an email or sms block, or use enroll first_login or off")
	}
	return nil
}

// Cleanup stops the authenticators. The store module is cleaned up by
// Caddy, which loaded it.
func (h *Handler) Cleanup() error {
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
	if h.policy.geo != nil {
		errs = append(errs, h.policy.geo.Close())
	}
	return errors.Join(errs...)
}

// ServeHTTP serves the flow under PathPrefix and lets any other request
// through only with a valid session.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if p := r.URL.Path; p == h.PathPrefix || strings.HasPrefix(p, h.PathPrefix) && p[len(h.PathPrefix)] == '/' {
		return h.serveFlow(w, r)
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	ff, ok := h.firstFactor(r, repl)
	if !ok {
		return h.deny(w, r)
	}
	if s, ok := h.validSession(r, ff); ok {
		repl.Set("http.auth.mfa.user", s.userValue)
		repl.Set("http.auth.mfa.method", s.methodValue)
		if ff == "" {
			repl.Set("http.auth.user.id", s.userValue)
		}
		stripCookies(r, cookieName(r, flowCookieName), cookieName(r, sessionCookieName), cookieName(r, deviceCookieName))
		return next.ServeHTTP(w, r)
	}
	if method, ok := h.skipChallenge(r, ff); ok {
		h.metrics.skip(method)
		return h.passWithoutChallenge(w, r, next, repl, ff, method)
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
		c, err := h.newSession(r, ff, ff, method)
		if err != nil {
			h.logger.Error("storing session", zap.Error(err))
		} else {
			http.SetCookie(w, c)
		}
	}
	if c := h.logger.Check(zapcore.DebugLevel, "challenge skipped"); c != nil {
		c.Write(zap.String("user", ff), zap.String("rule", method), zap.String("client_ip", clientIP(r)))
	}
	stripCookies(r, cookieName(r, flowCookieName), cookieName(r, sessionCookieName), cookieName(r, deviceCookieName))
	return next.ServeHTTP(w, r)
}

// isNavigation reports whether a browser is loading a page.
func isNavigation(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && strings.Contains(r.Header.Get("Accept"), "text/html")
}

// firstFactor returns the canonical first-factor user: "" in standalone
// mode (user ""). ok is false when the request must be denied: the user
// placeholder is unresolved or empty, or it reads a client header from an
// untrusted client (SECURITY.md D22, D23).
func (h *Handler) firstFactor(r *http.Request, repl *caddy.Replacer) (string, bool) {
	raw := *h.User
	if raw == "" {
		return "", true
	}
	if !h.identityTrusted(r, raw) {
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
	name, ok := canonicalUser(v)
	return name, ok
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
func (h *Handler) identityTrusted(r *http.Request, placeholder string) bool {
	if h.TrustIdentityHeaders || !strings.Contains(placeholder, "{http.request.header.") {
		return true
	}
	trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	return trusted
}

// deny answers a request that cannot start the flow at all.
func (h *Handler) deny(w http.ResponseWriter, r *http.Request) error {
	if c := h.logger.Check(zapcore.DebugLevel, "denied: no first-factor user"); c != nil {
		c.Write(zap.String("path", r.URL.Path))
	}
	return caddyhttp.Error(http.StatusUnauthorized, errors.New("mfa: no first-factor user"))
}

// challengeRedirect sends browsers to the sign-in page and everything else
// a 401 JSON error, so scripts never receive an HTML login page.
func (h *Handler) challengeRedirect(w http.ResponseWriter, r *http.Request) error {
	loc := h.PathPrefix + "/?return=" + url.QueryEscape(r.URL.RequestURI())
	if isNavigation(r) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, loc, http.StatusFound)
		return nil
	}
	return writeJSON(w, http.StatusUnauthorized, map[string]any{
		"error":    "mfa_required",
		"message":  "Multi-factor authentication is required.",
		"redirect": h.PathPrefix + "/",
	})
}

// handlerState is what Provision builds; kept apart from the JSON config.
type handlerState struct {
	logger   *zap.Logger
	now      func() time.Time
	baseURL  *url.URL
	dir      *directory
	store    storage.Store
	keys     keyring
	sessions *sessionCache
	dlog     *deliveryLog
	pending  *sync.WaitGroup // standalone deliveries not yet queued
	policy   policyState
	metrics  *metricSet
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
