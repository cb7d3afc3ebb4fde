package delivery

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestConfigUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    Config
		wantErr string
	}{
		{name: "empty", input: "delivery", want: Config{}},
		{name: "every option", input: "delivery {\n workers 4\n retries 5\n wait 2s\n}", want: Config{Workers: 4, Retries: 5, Wait: caddy.Duration(2 * time.Second)}},
		{name: "retries off", input: "delivery {\n retries off\n}", want: Config{Retries: -1}},
		{name: "argument", input: "delivery 3", wantErr: "wrong argument count"},
		{name: "zero retries", input: "delivery {\n retries 0\n}", wantErr: `invalid retries "0": must be a whole number of at least 1, or off`},
		{name: "workers off", input: "delivery {\n workers off\n}", wantErr: `invalid workers "off": must be a whole number of at least 1`},
		{name: "wait off", input: "delivery {\n wait off\n}", wantErr: `invalid wait duration "off"`},
		{name: "zero wait", input: "delivery {\n wait 0s\n}", wantErr: "must be positive"},
		{name: "twice", input: "delivery {\n workers 1\n workers 2\n}", wantErr: `duplicate delivery subdirective "workers"`},
		{name: "unknown", input: "delivery {\n backoff 1s\n}", wantErr: `unrecognized delivery subdirective "backoff"`},
		{name: "block after a value", input: "delivery {\n workers 1 {\n x\n }\n}", wantErr: "workers takes no block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := caddyfile.NewTestDispenser(tt.input)
			d.Next() // on "delivery", as the email and sms blocks call it
			var got Config
			err := got.UnmarshalCaddyfile(d)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("UnmarshalCaddyfile() = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile() = %v", err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		c       *Config
		wantErr string
	}{
		{name: "nil", c: nil},
		{name: "zero", c: &Config{}},
		{name: "bounds", c: &Config{Workers: MaxWorkers, Retries: MaxRetries, Wait: caddy.Duration(MaxWait)}},
		{name: "retries off", c: &Config{Retries: -1}},
		{name: "too many workers", c: &Config{Workers: 101}, wantErr: "delivery workers 101 outside 1..100"},
		{name: "negative workers", c: &Config{Workers: -1}, wantErr: "delivery workers -1 outside 1..100"},
		{name: "too many retries", c: &Config{Retries: 21}, wantErr: "delivery retries 21 above 20"},
		{name: "wait too long", c: &Config{Wait: caddy.Duration(2 * time.Minute)}, wantErr: "delivery wait 2m0s outside 0..1m"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigWithDefaults(t *testing.T) {
	want := Config{Workers: DefaultWorkers, Retries: DefaultRetries, Wait: caddy.Duration(DefaultWait)}
	if got := (*Config)(nil).WithDefaults(); *got != want {
		t.Errorf("nil.WithDefaults() = %+v, want %+v", *got, want)
	}
	c := &Config{Workers: 7, Retries: -1}
	if got := c.WithDefaults(); got != c || *got != (Config{Workers: 7, Retries: -1, Wait: caddy.Duration(DefaultWait)}) {
		t.Errorf("WithDefaults() = %p %+v, want %p with the set fields kept", got, *got, c)
	}
}
