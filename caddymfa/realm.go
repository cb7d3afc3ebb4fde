package caddymfa

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"golang.org/x/net/publicsuffix"
)

// A realm is the unit of trust (SECURITY.md K49): the sessions, flows,
// challenges, links, remembered devices and pending enrollments a
// handler makes carry its realm's name, and every handler refuses those
// of another realm, even on one store. Handlers share a realm only when
// their configs name the same one (realm <name>); otherwise each handler
// gets its own, derived from where it sits in the config: the listen
// ports of its server, the host and path matchers of the routes that
// lead to it, and its path_prefix. Nothing random goes into the derived
// name, so reloading or restarting with the same config keeps every
// session.
//
// The cookies of a realm have names of their own: mfa_session-<tag>,
// mfa_flow-<tag> and mfa_device-<tag>, where tag is a hash of the realm's
// name. Two handlers of different realms on one host (two routes of one
// site) thus keep their sessions side by side in one browser instead of
// replacing each other's. The session cookie's signature covers the
// realm's name too, so a value copied into another realm's cookie is
// treated as absent.
type realm struct {
	name string
	// domain is cookie_domain: the session cookie is sent to this domain
	// and its subdomains. "" for a host-only cookie.
	domain string
	// names are the cookie names, plain (HTTP) and prefixed (HTTPS),
	// indexed by cookieKind; made once, so the hot path builds none.
	plain, secure [cookieKinds]string
}

// cookieKind says which of a realm's cookies is meant.
type cookieKind int

const (
	cookieFlow cookieKind = iota
	cookieSession
	cookieDevice
	cookieNotice // an error kept across a form's redirect (flash.go)
	cookieKinds
)

// cookieBases are the cookie names before the realm's tag.
var cookieBases = [cookieKinds]string{cookieFlow: "mfa_flow", cookieSession: "mfa_session", cookieDevice: "mfa_device", cookieNotice: "mfa_notice"}

// maxRealmName bounds a configured realm name.
const maxRealmName = 64

// newRealm makes the realm called name, whose session cookie covers
// domain ("" for the request's host only).
func newRealm(name, domain string) *realm {
	rm := &realm{name: name, domain: domain}
	sum := sha256.Sum256([]byte("caddy-mfa/realm\x00" + name))
	tag := hex.EncodeToString(sum[:6])
	for k, base := range cookieBases {
		rm.plain[k] = base + "-" + tag
		prefix := hostPrefix
		if domain != "" && cookieKind(k) == cookieSession {
			// A cookie with a Domain cannot have the __Host- prefix.
			prefix = securePrefix
		}
		rm.secure[k] = prefix + rm.plain[k]
	}
	return rm
}

// checkRealmName refuses a configured realm name that is not a plain
// token; derived names contain spaces, so no configured name equals one.
func checkRealmName(name string) error {
	if name == "" || len(name) > maxRealmName {
		return fmt.Errorf("realm %q: want a name of 1 to %d letters, digits, '.', '_' or '-'", name, maxRealmName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("realm %q: want a name of 1 to %d letters, digits, '.', '_' or '-'", name, maxRealmName)
		}
	}
	return nil
}

// cookieName is the name of the realm's cookie of a kind for the request.
func (rm *realm) cookieName(r *http.Request, k cookieKind) string {
	if isHTTPS(r) {
		return rm.secure[k]
	}
	return rm.plain[k]
}

// read returns the value of the realm's cookie of a kind.
func (rm *realm) read(r *http.Request, k cookieKind) string {
	return readCookie(r, rm.cookieName(r, k))
}

// cookie builds the realm's cookie of a kind (SECURITY.md E26). Only the
// session cookie takes the realm's cookie_domain: flows and remembered
// devices stay with the host they were made on.
func (rm *realm) cookie(r *http.Request, k cookieKind, value string, expires time.Time) *http.Cookie {
	c := newCookie(r, rm.cookieName(r, k), value, expires)
	if k == cookieSession && rm.domain != "" {
		c.Domain = rm.domain
	}
	return c
}

// expired is the cookie that deletes the realm's cookie of a kind.
func (rm *realm) expired(r *http.Request, k cookieKind) *http.Cookie {
	c := rm.cookie(r, k, "", time.Unix(1, 0))
	c.MaxAge = -1
	return c
}

// strip removes the realm's cookies from the request before it goes
// upstream.
func (rm *realm) strip(r *http.Request) {
	names := &rm.plain
	if isHTTPS(r) {
		names = &rm.secure
	}
	stripCookies(r, names[:]...)
}

// covers reports whether a host (a Host header value) may present the
// realm's sessions: the host the session was made on, or with
// cookie_domain any host under that domain.
func (rm *realm) covers(host, sessionHost string) bool {
	host = hostOnly(host)
	if rm.domain == "" {
		return strings.EqualFold(host, sessionHost)
	}
	return underDomain(host, rm.domain)
}

// underDomain reports whether host is domain or one of its subdomains.
func underDomain(host, domain string) bool {
	if len(host) == len(domain) {
		return strings.EqualFold(host, domain)
	}
	return len(host) > len(domain) && host[len(host)-len(domain)-1] == '.' && strings.EqualFold(host[len(host)-len(domain):], domain)
}

// safeReturn accepts the return paths of safeReturnPath and, with
// cookie_domain, absolute http(s) URLs of hosts under that domain, so a
// sign-in at one member site can send the user on to another. Anything
// else is refused (SECURITY.md F32).
func (rm *realm) safeReturn(raw, prefix string) (string, bool) {
	if p, ok := safeReturnPath(raw, prefix); ok || rm.domain == "" {
		return p, ok
	}
	if raw == "" || len(raw) > maxReturnURL {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		if c := raw[i]; c == '\\' || c <= 0x20 || c == 0x7f || c >= 0x80 {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil || u.Opaque != "" || u.Host == "" {
		return "", false
	}
	host := u.Hostname()
	if host == "" || strings.HasSuffix(host, ".") || !underDomain(host, rm.domain) {
		return "", false
	}
	if port := u.Port(); port != "" && strings.Trim(port, "0123456789") != "" {
		return "", false
	}
	decoded, err := url.PathUnescape(u.EscapedPath())
	if err != nil || strings.HasPrefix(decoded, "//") || strings.ContainsRune(decoded, '\\') {
		return "", false
	}
	if u.EscapedPath() != "" && !strings.HasPrefix(u.EscapedPath(), "/") {
		return "", false
	}
	return u.String(), true
}

// checkCookieDomain normalises cookie_domain and refuses one that is no
// parent of the site's hosts (when they are known) or that is a public
// suffix, for which browsers refuse the cookie.
func checkCookieDomain(domain string, hosts []string) (string, error) {
	d := strings.ToLower(strings.TrimPrefix(strings.TrimSpace(domain), "."))
	if d == "" || strings.ContainsAny(d, "/:@ *") || !strings.Contains(d, ".") || strings.HasSuffix(d, ".") {
		return "", fmt.Errorf("cookie_domain %q: want a domain name such as example.com", domain)
	}
	if ps, _ := publicsuffix.PublicSuffix(d); ps == d {
		return "", fmt.Errorf("cookie_domain %q is a public suffix; browsers refuse cookies for it: use the site's own domain, such as example.%s", domain, d)
	}
	for _, h := range hosts {
		h = strings.ToLower(strings.TrimPrefix(h, "*."))
		if h == "" || h == "*" {
			continue
		}
		if !underDomain(h, d) {
			return "", fmt.Errorf("cookie_domain %q does not cover the site's host %q: it must be that host or a parent domain of it", domain, h)
		}
	}
	return d, nil
}

// siteScope is where a handler sits in the config: its server's listen
// ports and, route by route from the server down to the handler, the
// hosts and paths that lead to it.
type siteScope struct {
	listen []string
	hosts  []string
	routes []string
}

// name is the realm name derived from the scope and the handler's
// path_prefix. It contains spaces, so no configured name equals it.
func (s siteScope) name(prefix string) string {
	var b strings.Builder
	b.WriteString("site ")
	b.WriteString(strings.Join(s.listen, ","))
	for _, r := range s.routes {
		b.WriteString(" ")
		b.WriteString(r)
	}
	b.WriteString(" prefix=")
	b.WriteString(prefix)
	return b.String()
}

// scopeOf finds where the handler being provisioned sits. Caddy
// provisions a route list one route at a time, and a route's handlers
// before it clears their JSON: the first route of a list that still
// holds handler JSON is the one being provisioned, whose matchers are
// already loaded. The server's routes lead to the site; each subroute
// in the module ancestry leads one level further.
func scopeOf(ctx caddy.Context) siteScope {
	var s siteScope
	srv, _ := ctx.Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if srv == nil {
		return s
	}
	// Ports, not addresses: nodes of a cluster that bind their own
	// addresses still derive one realm from one Caddyfile.
	for _, l := range srv.Listen {
		if na, err := caddy.ParseNetworkAddress(l); err == nil && !na.IsUnixNetwork() {
			l = na.Network + "/" + strconv.FormatUint(uint64(na.StartPort), 10) + "-" + strconv.FormatUint(uint64(na.EndPort), 10)
		}
		if !slices.Contains(s.listen, l) {
			s.listen = append(s.listen, l)
		}
	}
	slices.Sort(s.listen)
	s.add(srv.Routes)
	for _, m := range ctx.Modules() {
		if sr, ok := m.(*caddyhttp.Subroute); ok {
			s.add(sr.Routes)
		}
	}
	return s
}

// add records the matchers of the route being provisioned in a list.
func (s *siteScope) add(routes caddyhttp.RouteList) {
	for i := range routes {
		if routes[i].HandlersRaw == nil {
			continue
		}
		var sets []string
		for _, set := range routes[i].MatcherSets {
			var parts []string
			for _, m := range set {
				switch m := m.(type) {
				case *caddyhttp.MatchHost:
					hosts := slices.Sorted(slices.Values(*m))
					s.hosts = append(s.hosts, hosts...)
					parts = append(parts, "host="+strings.Join(hosts, ","))
				case *caddyhttp.MatchPath:
					parts = append(parts, "path="+strings.Join(slices.Sorted(slices.Values(*m)), ","))
				}
			}
			slices.Sort(parts)
			sets = append(sets, strings.Join(parts, "&"))
		}
		if len(sets) > 0 {
			s.routes = append(s.routes, "["+strings.Join(sets, "|")+"]")
		}
		return
	}
}

// provisionRealm works out the handler's realm and gate. It needs the
// directory (for the gate).
func (h *Handler) provisionRealm(ctx caddy.Context) error {
	scope := scopeOf(ctx)
	name := h.Realm
	if name == "" {
		name = scope.name(h.PathPrefix)
	} else if err := checkRealmName(name); err != nil {
		return err
	}
	domain := ""
	if h.CookieDomain != "" {
		d, err := checkCookieDomain(h.CookieDomain, scope.hosts)
		if err != nil {
			return err
		}
		domain = d
	}
	h.realm = newRealm(name, domain)
	h.gate = &gate{dir: h.dir, standalone: h.standalone(), methods: h.Methods, maxAge: time.Duration(h.MaxAge)}
	return nil
}
