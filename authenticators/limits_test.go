package authenticators

import (
	"reflect"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

func TestDefaultsApply(t *testing.T) {
	d := Defaults{CodeTTL: time.Minute, LinkTTL: 5 * time.Minute, PerHour: 50, Per5m: 10}

	var send string
	var linkTTL caddy.Duration
	var l Limits
	d.Apply(&send, &linkTTL, &l)
	want := Limits{
		CodeLength:  DefaultCodeLength,
		CodeTTL:     caddy.Duration(time.Minute),
		MaxAttempts: DefaultMaxAttempts,
		MaxSends:    DefaultMaxSends,
		Throttle: &Throttle{
			PerHour:               50,
			Per5m:                 10,
			PerIPPerHour:          DefaultPerIPPerHour,
			PerUserPerHour:        DefaultPerUserPerHour,
			PerDestinationPerHour: DefaultPerDestinationPerHour,
			Cooldown:              caddy.Duration(DefaultCooldown),
		},
	}
	if send != SendCode || linkTTL != caddy.Duration(5*time.Minute) || !reflect.DeepEqual(l, want) {
		t.Errorf("zero settings: got %q %v %+v %+v, want %q 5m %+v %+v", send, linkTTL, l, *l.Throttle, SendCode, want, *want.Throttle)
	}

	// Set values, and caps turned off (negative), are kept.
	send, linkTTL = SendLink, caddy.Duration(time.Hour)
	set := Limits{CodeLength: 8, CodeTTL: caddy.Duration(2 * time.Minute), MaxAttempts: 5, MaxSends: 1,
		Throttle: &Throttle{PerHour: -1, Per5m: 3, PerIPPerHour: -1, PerUserPerHour: 2, PerDestinationPerHour: 1, Cooldown: -1}}
	l = set
	throttle := *set.Throttle
	d.Apply(&send, &linkTTL, &l)
	if send != SendLink || linkTTL != caddy.Duration(time.Hour) || !reflect.DeepEqual(l, set) || *l.Throttle != throttle {
		t.Errorf("set settings changed: %q %v %+v %+v", send, linkTTL, l, *l.Throttle)
	}
}

func TestCheckSettings(t *testing.T) {
	tests := []struct {
		name    string
		send    string
		linkTTL time.Duration
		limits  Limits
		wantErr string
	}{
		{name: "zero stands for the defaults"},
		{name: "bounds", send: SendLink, linkTTL: MaxLinkTTL, limits: Limits{CodeLength: MaxCodeLength, CodeTTL: caddy.Duration(MaxCodeTTL), MaxAttempts: MaxAttempts, MaxSends: MaxSends}},
		{name: "unknown send", send: "voice", wantErr: `send must be code or link, not "voice"`},
		{name: "short code", limits: Limits{CodeLength: 3}, wantErr: "code_length 3 outside 4..10"},
		{name: "long code", limits: Limits{CodeLength: 11}, wantErr: "code_length 11 outside 4..10"},
		{name: "long code_ttl", limits: Limits{CodeTTL: caddy.Duration(11 * time.Minute)}, wantErr: "code_ttl 11m0s outside 0..10m0s"},
		{name: "negative code_ttl", limits: Limits{CodeTTL: -1}, wantErr: "code_ttl -1ns outside 0..10m0s"},
		{name: "long link_ttl", linkTTL: 2 * time.Hour, wantErr: "link_ttl 2h0m0s outside 0..1h0m0s"},
		{name: "too many attempts", limits: Limits{MaxAttempts: 101}, wantErr: "max_attempts 101 outside 1..100"},
		{name: "negative sends", limits: Limits{MaxSends: -1}, wantErr: "max_sends -1 outside 1..100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSettings(tt.send, caddy.Duration(tt.linkTTL), &tt.limits)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckSettings() = %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("CheckSettings() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
