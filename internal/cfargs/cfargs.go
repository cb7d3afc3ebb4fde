// Package cfargs reads the arguments of Caddyfile subdirectives the same
// way in every package that parses part of the mfa directive (the
// directive itself, the email, sms and totp blocks, shared blocks such as
// throttle and delivery), so a count, a duration, a choice or "off" means
// the same and fails with the same message everywhere.
package cfargs

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// Once remembers which subdirectives of one block have been seen.
type Once map[string]bool

// Check returns an error naming the current token if it has already been
// seen in block.
func (o Once) Check(d *caddyfile.Dispenser, block string) error {
	name := d.Val()
	if o[name] {
		return d.Errf("duplicate %s subdirective %q", block, name)
	}
	o[name] = true
	return nil
}

// OneArg reads exactly one argument and no block.
func OneArg(d *caddyfile.Dispenser) (string, error) {
	name := d.Val()
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if err := EndLine(d, name); err != nil {
		return "", err
	}
	return v, nil
}

// EndLine refuses further arguments, and a block, after the arguments of
// the subdirective name.
func EndLine(d *caddyfile.Dispenser, name string) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(d.Nesting()) {
		return d.Errf("%s takes no block", name)
	}
	return nil
}

// DurationArg reads exactly one positive duration. With allowOff, "off"
// yields -1, which turns the setting off.
func DurationArg(d *caddyfile.Dispenser, allowOff bool) (caddy.Duration, error) {
	name := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	dur, err := ParseDuration(d, name, allowOff)
	if err != nil {
		return 0, err
	}
	if err := EndLine(d, name); err != nil {
		return 0, err
	}
	return dur, nil
}

// ParseDuration parses the current token as a positive duration for the
// setting name. Zero is refused, because in JSON it means "use the
// default".
func ParseDuration(d *caddyfile.Dispenser, name string, allowOff bool) (caddy.Duration, error) {
	v := d.Val()
	if allowOff && v == "off" {
		return -1, nil
	}
	dur, err := caddy.ParseDuration(v)
	if err != nil {
		return 0, d.Errf("invalid %s duration %q: %w", name, v, err)
	}
	if dur <= 0 {
		return 0, d.Errf("invalid %s duration %q: must be positive", name, v)
	}
	return caddy.Duration(dur), nil
}

// IntArg reads exactly one count (a whole number of at least 1). With
// allowOff, "off" yields -1, which turns the limit off.
func IntArg(d *caddyfile.Dispenser, allowOff bool) (int, error) {
	name := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	n, err := ParseCount(d, name, allowOff)
	if err != nil {
		return 0, err
	}
	if err := EndLine(d, name); err != nil {
		return 0, err
	}
	return n, nil
}

// ParseCount parses the current token as a count for the setting name.
// Zero is refused, because in JSON it means "use the default".
func ParseCount(d *caddyfile.Dispenser, name string, allowOff bool) (int, error) {
	v := d.Val()
	if allowOff && v == "off" {
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		if allowOff {
			return 0, d.Errf("invalid %s %q: must be a whole number of at least 1, or off", name, v)
		}
		return 0, d.Errf("invalid %s %q: must be a whole number of at least 1", name, v)
	}
	return n, nil
}

// ChoiceArg reads exactly one argument that must be one of choices; what
// begins the error message for any other value.
func ChoiceArg(d *caddyfile.Dispenser, what string, choices ...string) (string, error) {
	name := d.Val()
	if !d.NextArg() {
		return "", d.ArgErr()
	}
	v := d.Val()
	if !slices.Contains(choices, v) {
		last := len(choices) - 1
		return "", d.Errf("%s %q: must be %s or %s", what, v, strings.Join(choices[:last], ", "), choices[last])
	}
	if err := EndLine(d, name); err != nil {
		return "", err
	}
	return v, nil
}

// RangeArg reads exactly one whole number from lo to hi.
func RangeArg(d *caddyfile.Dispenser, lo, hi int) (int, error) {
	name := d.Val()
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	v := d.Val()
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, d.Errf("invalid %s %q: must be a whole number from %d to %d", name, v, lo, hi)
	}
	if err := EndLine(d, name); err != nil {
		return 0, err
	}
	return n, nil
}

// ModuleJSON encodes a guest module with its inline key, turning encoding
// warnings into an error.
func ModuleJSON(d *caddyfile.Dispenser, val any, key, name string) (json.RawMessage, error) {
	var warnings []caddyconfig.Warning
	raw := caddyconfig.JSONModuleObject(val, key, name, &warnings)
	if len(warnings) > 0 {
		return nil, d.Errf("encoding %s %q: %s", key, name, warnings[0].Message)
	}
	return raw, nil
}
