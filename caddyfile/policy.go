package caddyfile

import (
	"github.com/caddymfa/caddy-mfa/internal/cfargs"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// privateRanges is the trusted_networks shorthand for the private and
// loopback ranges, kept as written; the handler expands it at provision.
const privateRanges = "private_ranges"

// policyArg reads "policy always|never|new_ip|new_country". Whether the
// policy fits the rest of the configuration (new_country needs geoip_db;
// the standalone flow takes only always) is left to the handler.
func policyArg(d *caddyfile.Dispenser) (string, error) {
	return cfargs.ChoiceArg(d, "unrecognized mfa policy", "always", "never", "new_ip", "new_country")
}

// geoIPArg reads "geoip_db <path>". The path may hold placeholders, which
// the handler resolves at provision.
func geoIPArg(d *caddyfile.Dispenser) (string, error) {
	v, err := cfargs.OneArg(d)
	if err != nil {
		return "", err
	}
	if v == "" {
		return "", d.Err(`geoip_db needs the path of a country database, such as "/usr/share/GeoIP/GeoLite2-Country.mmdb"`)
	}
	return v, nil
}

// rememberArg reads "remember_device <duration>|off". Off is the
// default, so it yields 0, which JSON leaves out.
func rememberArg(d *caddyfile.Dispenser) (caddy.Duration, error) {
	name := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	var dur caddy.Duration
	if v := d.Val(); v != "off" {
		parsed, err := caddy.ParseDuration(v)
		if err != nil || parsed <= 0 {
			return 0, d.Errf("invalid %s %q: must be a positive duration, such as 30d, or off", name, v)
		}
		dur = caddy.Duration(parsed)
	}
	if err := cfargs.EndLine(d, name); err != nil {
		return 0, err
	}
	return dur, nil
}

// networksArg reads "trusted_networks <cidr|address|private_ranges...>":
// one or more networks, each a CIDR, a single IP address or
// private_ranges, checked as the handler will parse them.
func networksArg(d *caddyfile.Dispenser) ([]string, error) {
	name := d.Val()
	var networks []string
	for d.NextArg() {
		v := d.Val()
		if v != privateRanges {
			if _, err := caddyhttp.CIDRExpressionToPrefix(v); err != nil {
				return nil, d.Errf("invalid %s %q: must be a CIDR such as 10.0.0.0/8, an IP address, or %s", name, v, privateRanges)
			}
		}
		networks = append(networks, v)
	}
	if len(networks) == 0 {
		return nil, d.ArgErr()
	}
	if err := cfargs.EndLine(d, name); err != nil {
		return nil, err
	}
	return networks, nil
}
