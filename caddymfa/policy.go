package caddymfa

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/oschwald/maxminddb-golang/v2"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/storage"
)

// Policies: when the second factor is asked.
const (
	policyAlways     = "always"
	policyNever      = "never"
	policyNewIP      = "new_ip"
	policyNewCountry = "new_country"
)

// Methods of requests let through without a challenge, as
// {http.auth.mfa.method} shows them.
const (
	skipTrustedNetwork = "trusted_network"
	skipNever          = "policy_never"
	skipKnownIP        = "known_ip"
	skipKnownCountry   = "known_country"
	skipDevice         = "remembered_device"
)

// Known places per user: the newest maxKnownPlaces, each for knownFor.
const (
	maxKnownPlaces = 20
	knownFor       = 90 * 24 * time.Hour
)

// knownPlace is an IP address, with its country when a GeoIP database is
// configured, from which the user passed a challenge.
type knownPlace struct {
	IP      string    `json:"ip"`
	Country string    `json:"c,omitempty"`
	Seen    time.Time `json:"t"`
}

// policyState is what Provision builds for the policy.
type policyState struct {
	trusted []netip.Prefix
	geo     *maxminddb.Reader
}

// provisionPolicy sets the policy default, parses trusted_networks and
// opens the GeoIP database.
func (h *Handler) provisionPolicy(repl *caddy.Replacer) error {
	h.Policy = strings.ToLower(strings.TrimSpace(h.Policy))
	if h.Policy == "" {
		h.Policy = policyAlways
	}
	var networks []string
	for _, n := range h.TrustedNetworks {
		if n == "private_ranges" {
			networks = append(networks, caddyhttp.PrivateRangesCIDR()...)
		} else {
			networks = append(networks, n)
		}
	}
	for _, n := range networks {
		p, err := caddyhttp.CIDRExpressionToPrefix(n)
		if err != nil {
			return fmt.Errorf("trusted_networks: %q: want a CIDR, an address or private_ranges: %v", n, err)
		}
		h.policy.trusted = append(h.policy.trusted, p)
	}
	if path := repl.ReplaceKnown(h.GeoIPDB, ""); path != "" {
		db, err := maxminddb.Open(path)
		if err != nil {
			return fmt.Errorf("geoip_db: %w", err)
		}
		h.policy.geo = db
	}
	return nil
}

// validatePolicy checks that the policy can work as configured.
func (h *Handler) validatePolicy() error {
	switch h.Policy {
	case policyAlways, policyNever, policyNewIP:
	case policyNewCountry:
		if h.policy.geo == nil {
			return fmt.Errorf("policy new_country needs a country database: set geoip_db to a MaxMind-format file such as GeoLite2-Country.mmdb")
		}
	default:
		return fmt.Errorf("unknown policy %q (use always, never, new_ip or new_country)", h.Policy)
	}
	if *h.User == "" && (h.Policy != policyAlways || len(h.TrustedNetworks) > 0 || h.RememberDevice > 0) {
		return fmt.Errorf("policy %s, trusted_networks and remember_device let a known user skip the second factor, but user is empty (standalone): there is no first factor to know the user by", h.Policy)
	}
	if h.RememberDevice < 0 {
		return fmt.Errorf("remember_device must be positive")
	}
	return nil
}

// clientIP is the request's client address, as Caddy's client_ip.
func clientIP(r *http.Request) string {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	return ip
}

// inTrustedNetwork reports whether the client is in trusted_networks.
func (h *Handler) inTrustedNetwork(r *http.Request) bool {
	if len(h.policy.trusted) == 0 {
		return false
	}
	addr, err := netip.ParseAddr(clientIP(r))
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range h.policy.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// country is the ISO code of the client's country, "" when unknown or no
// database is configured.
func (h *Handler) country(ip string) string {
	if h.policy.geo == nil {
		return ""
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	var rec struct {
		Country struct {
			ISOCode string `maxminddb:"iso_code"`
		} `maxminddb:"country"`
	}
	if err := h.policy.geo.Lookup(addr.Unmap()).Decode(&rec); err != nil {
		return ""
	}
	return rec.Country.ISOCode
}

// skipChallenge reports whether a request from the first-factor user ff
// that has no session may go on without a challenge, and by which rule.
// Store errors deny: the challenge is asked.
func (h *Handler) skipChallenge(r *http.Request, ff string) (string, bool) {
	switch {
	case ff == "":
		return "", false
	case h.inTrustedNetwork(r):
		return skipTrustedNetwork, true
	case h.Policy == policyNever:
		return skipNever, true
	}
	if h.RememberDevice > 0 {
		ok, err := h.rememberedDevice(r, ff)
		if err != nil {
			h.logger.Error("reading remembered device; asking the challenge", zap.Error(err))
			return "", false
		}
		if ok {
			return skipDevice, true
		}
	}
	if h.Policy != policyNewIP && h.Policy != policyNewCountry {
		return "", false
	}
	rec, err := h.loadUser(r.Context(), ff)
	if err != nil {
		h.logger.Error("reading known places; asking the challenge", zap.Error(err))
		return "", false
	}
	ip := clientIP(r)
	if !h.knownPlace(rec.Known, ip, h.country(ip)) {
		return "", false
	}
	if h.Policy == policyNewCountry {
		return skipKnownCountry, true
	}
	return skipKnownIP, true
}

// knownPlace reports whether the user has passed a challenge from this IP
// (new_ip) or country (new_country) within knownFor.
func (h *Handler) knownPlace(places []knownPlace, ip, country string) bool {
	now := h.now()
	for _, p := range places {
		if now.Sub(p.Seen) >= knownFor {
			continue
		}
		if h.Policy == policyNewCountry && country != "" && p.Country == country ||
			h.Policy == policyNewIP && p.IP == ip {
			return true
		}
	}
	return false
}

// rememberPlace puts the IP (and country) first in the user's known
// places, dropping expired ones and the oldest beyond maxKnownPlaces.
func rememberPlace(rec *userRecord, ip, country string, now time.Time) {
	kept := []knownPlace{{IP: ip, Country: country, Seen: now}}
	for _, p := range rec.Known {
		if p.IP != ip && now.Sub(p.Seen) < knownFor && len(kept) < maxKnownPlaces {
			kept = append(kept, p)
		}
	}
	rec.Known = kept
}

// recordSignInPlace remembers where a challenge was passed, for new_ip and
// new_country, and writes an audit line for a new place.
func (h *Handler) recordSignInPlace(ctx context.Context, user, ip string) error {
	if h.Policy != policyNewIP && h.Policy != policyNewCountry {
		return nil
	}
	country := h.country(ip)
	var isNew bool
	err := h.updateUser(ctx, user, func(rec *userRecord) (storage.Op, error) {
		isNew = !h.knownPlace(rec.Known, ip, country)
		rememberPlace(rec, ip, country, h.now())
		return storage.Write, nil
	})
	if err != nil {
		return err
	}
	if isNew {
		h.audit(ctx, "new location", zap.String("user", user), zap.String("country", country))
	}
	return nil
}
