package caddymfa

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// clientIPVar is the request variable that holds the client address the
// handler decided on, so the audit log, which sees only a context, writes
// the same one.
const clientIPVar = "mfa.client_ip"

// maxForwardedHops bounds how many X-Forwarded-For entries are looked at
// from the right.
const maxForwardedHops = 20

// clientIP is the client address for every security decision: trusted
// networks, known places and countries, per-IP caps, audit lines
// (SECURITY.md N63). It is one an attacker cannot write:
//
//   - the connection's remote address, unless it is one of the server's
//     trusted_proxies;
//   - from a trusted proxy, the rightmost entry of the client IP headers
//     (X-Forwarded-For) that is not itself a trusted proxy: the address
//     the last trusted proxy saw connect to it. With
//     trusted_proxies_strict this is Caddy's own client_ip.
//
// Without trusted_proxies_strict, Caddy's client_ip is the leftmost
// entry, which the client writes ("X-Forwarded-For: 10.0.0.1" is passed
// on by most proxies): it is good for logs, never for skipping a
// challenge.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), clientIPVar).(string); ok {
		return ip
	}
	ip := decideClientIP(r)
	caddyhttp.SetVar(r.Context(), clientIPVar, ip)
	return ip
}

func decideClientIP(r *http.Request) string {
	caddyIP, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	srv, _ := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	fromProxy, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	if !fromProxy || srv == nil {
		// Caddy's client_ip is then the connection's address.
		return caddyIP
	}
	if srv.TrustedProxiesStrict > 0 {
		return caddyIP
	}
	peer := remoteIP(r)
	var values []string
	for _, name := range srv.ClientIPHeaders {
		values = append(values, r.Header.Values(name)...)
	}
	parts := strings.Split(strings.Join(values, ","), ",")
	hops := 0
	for _, part := range slices.Backward(parts) {
		if hops++; hops > maxForwardedHops {
			break
		}
		host, _, err := net.SplitHostPort(strings.TrimSpace(part))
		if err != nil {
			host = strings.TrimSpace(part)
		}
		host, _, _ = strings.Cut(host, "%")
		addr, err := netip.ParseAddr(host)
		if err != nil {
			// A trusted proxy appends a valid address; anything
			// else left of it is the client's.
			break
		}
		if !trustedProxy(srv, addr) {
			return addr.Unmap().String()
		}
	}
	return peer
}

// remoteIP is the address of the connection.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	host, _, _ = strings.Cut(host, "%")
	if addr, err := netip.ParseAddr(host); err == nil {
		return addr.String()
	}
	return host
}

// trustedProxy reports whether the server's trusted_proxies include addr.
// The ranges live in the server's IP source module, which Caddy keeps to
// itself; PrepareRequest of a request from addr asks the server the same
// question it asks of every connection.
func trustedProxy(srv *caddyhttp.Server, addr netip.Addr) bool {
	probe := &http.Request{
		Method:     http.MethodGet,
		URL:        &url.URL{Path: "/"},
		Header:     http.Header{},
		RemoteAddr: netip.AddrPortFrom(addr, 0).String(),
	}
	probe = probe.WithContext(context.Background())
	probe = caddyhttp.PrepareRequest(probe, caddy.NewReplacer(), nil, srv)
	trusted, _ := caddyhttp.GetVar(probe.Context(), caddyhttp.TrustedProxyVarKey).(bool)
	return trusted
}
