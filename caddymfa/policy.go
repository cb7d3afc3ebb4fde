package caddymfa

import (
	"context"
	"fmt"
	"net/netip"
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

// policy decides when the second factor may be skipped (policy,
// trusted_networks, remember_device) and keeps the places users passed a
// challenge from. It sees client addresses and device tokens, never
// requests.
type policy struct {
	name    string
	trusted []netip.Prefix
	geo     *maxminddb.Reader

	devices *devices
	users   *users
	now     func() time.Time
	logger  *zap.Logger
	audit   auditor
}

// newPolicy parses trusted_networks and opens the GeoIP database at
// geoPath ("" for none).
func newPolicy(name string, trustedNetworks []string, geoPath string) (*policy, error) {
	p := &policy{name: name}
	var networks []string
	for _, n := range trustedNetworks {
		if n == "private_ranges" {
			networks = append(networks, caddyhttp.PrivateRangesCIDR()...)
		} else {
			networks = append(networks, n)
		}
	}
	for _, n := range networks {
		pfx, err := caddyhttp.CIDRExpressionToPrefix(n)
		if err != nil {
			return nil, fmt.Errorf("trusted_networks: %q: want a CIDR, an address or private_ranges: %w", n, err)
		}
		p.trusted = append(p.trusted, pfx)
	}
	if geoPath != "" {
		db, err := maxminddb.Open(geoPath)
		if err != nil {
			return nil, fmt.Errorf("geoip_db: %w", err)
		}
		p.geo = db
	}
	return p, nil
}

// wire gives the policy the services it reads.
func (p *policy) wire(d *devices, u *users, now func() time.Time, logger *zap.Logger, audit auditor) {
	p.devices, p.users, p.now, p.logger, p.audit = d, u, now, logger, audit
}

// validate checks that the policy can work as configured.
func (p *policy) validate(standalone, trustedNetworks bool, rememberDevice caddy.Duration) error {
	switch p.name {
	case policyAlways, policyNever, policyNewIP:
	case policyNewCountry:
		if p.geo == nil {
			return fmt.Errorf("policy new_country needs a country database: set geoip_db to a MaxMind-format file such as GeoLite2-Country.mmdb")
		}
	default:
		return fmt.Errorf("unknown policy %q (use always, never, new_ip or new_country)", p.name)
	}
	if standalone && (p.name != policyAlways || trustedNetworks || rememberDevice > 0) {
		return fmt.Errorf("policy %s, trusted_networks and remember_device let a known user skip the second factor, but user is empty (standalone): there is no first factor to know the user by", p.name)
	}
	if rememberDevice < 0 {
		return fmt.Errorf("remember_device must be positive")
	}
	return nil
}

// inTrustedNetwork reports whether the client address ip is in
// trusted_networks.
func (p *policy) inTrustedNetwork(ip string) bool {
	if len(p.trusted) == 0 {
		return false
	}
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, pfx := range p.trusted {
		if pfx.Contains(addr) {
			return true
		}
	}
	return false
}

// country is the ISO code of the client's country, "" when unknown or no
// database is configured.
func (p *policy) country(ip string) string {
	if p.geo == nil {
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
	if err := p.geo.Lookup(addr.Unmap()).Decode(&rec); err != nil {
		return ""
	}
	return rec.Country.ISOCode
}

// skip reports whether a request from the first-factor user ff at the
// client address ip, with the remembered-device token device ("" for
// none), that has no session may go on without a challenge, and by which
// rule. Store errors deny: the challenge is asked.
func (p *policy) skip(ctx context.Context, ff, ip, device string) (string, bool) {
	switch {
	case ff == "":
		return "", false
	case p.inTrustedNetwork(ip):
		return skipTrustedNetwork, true
	case p.name == policyNever:
		return skipNever, true
	}
	if p.devices.ttl > 0 && device != "" {
		ok, err := p.devices.remembered(ctx, device, ff)
		if err != nil {
			p.logger.Error("reading remembered device; asking the challenge", zap.Error(err))
			return "", false
		}
		if ok {
			return skipDevice, true
		}
	}
	if p.name != policyNewIP && p.name != policyNewCountry {
		return "", false
	}
	rec, err := p.users.load(ctx, ff)
	if err != nil {
		p.logger.Error("reading known places; asking the challenge", zap.Error(err))
		return "", false
	}
	if !p.knownPlace(rec.Known, ip, p.country(ip)) {
		return "", false
	}
	if p.name == policyNewCountry {
		return skipKnownCountry, true
	}
	return skipKnownIP, true
}

// knownPlace reports whether the user has passed a challenge from this IP
// (new_ip) or country (new_country) within knownFor.
func (p *policy) knownPlace(places []knownPlace, ip, country string) bool {
	now := p.now()
	for _, kp := range places {
		if now.Sub(kp.Seen) >= knownFor {
			continue
		}
		if p.name == policyNewCountry && country != "" && kp.Country == country ||
			p.name == policyNewIP && kp.IP == ip {
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

// recordPlace remembers where a challenge was passed, for new_ip and
// new_country, and writes an audit line for a new place.
func (p *policy) recordPlace(ctx context.Context, user, ip string) error {
	if p.name != policyNewIP && p.name != policyNewCountry {
		return nil
	}
	country := p.country(ip)
	var isNew bool
	err := p.users.update(ctx, user, func(rec *userRecord) (storage.Op, error) {
		isNew = !p.knownPlace(rec.Known, ip, country)
		rememberPlace(rec, ip, country, p.now())
		return storage.Write, nil
	})
	if err != nil {
		return err
	}
	if isNew {
		p.audit.event(ctx, "new location", userField(user), zap.String("country", country))
	}
	return nil
}
