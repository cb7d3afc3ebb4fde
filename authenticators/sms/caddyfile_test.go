package sms

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
)

// rawMap decodes a provider's JSON for comparison.
func rawMap(t *testing.T, raw json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("provider JSON %s: %v", raw, err)
	}
	return m
}

func TestUnmarshalCaddyfile(t *testing.T) {
	input := `sms {
		provider twilio {
			account_sid {env.TWILIO_ACCOUNT_SID}
			auth_token {env.TWILIO_AUTH_TOKEN}
			from +12015550100
			timeout 5s
		}
		message "Your code is %s"
		message sv "Din kod är %s"
		message pt-BR "Seu código é %s"
		send code
		code_length 8
		code_ttl 2m
		max_attempts 5
		max_sends 2
		allowed_countries US ca GB SE
		per_country_per_hour 30
		throttle {
			per_hour 40
			per_5m off
			per_ip_per_hour 4
			per_user_per_hour 3
			per_destination_per_hour 2
			cooldown 1m
		}
		delivery {
			workers 3
			retries off
			wait 2s
		}
	}`
	var c Config
	if err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatalf("UnmarshalCaddyfile() = %v", err)
	}
	wantProvider := map[string]any{
		"provider":    "twilio",
		"account_sid": "{env.TWILIO_ACCOUNT_SID}",
		"auth_token":  "{env.TWILIO_AUTH_TOKEN}",
		"from":        "+12015550100",
		"timeout":     float64(5 * time.Second),
	}
	if got := rawMap(t, c.ProviderRaw); !reflect.DeepEqual(got, wantProvider) {
		t.Errorf("provider = %v, want %v", got, wantProvider)
	}
	c.ProviderRaw = nil
	want := Config{
		Message:  "Your code is %s",
		Messages: map[string]string{"sv": "Din kod är %s", "pt-BR": "Seu código é %s"},
		Send:     "code",
		Limits: authenticators.Limits{
			CodeLength:  8,
			CodeTTL:     caddy.Duration(2 * time.Minute),
			MaxAttempts: 5,
			MaxSends:    2,
			Throttle: &authenticators.Throttle{
				PerHour: 40, Per5m: -1, PerIPPerHour: 4, PerUserPerHour: 3, PerDestinationPerHour: 2,
				Cooldown: caddy.Duration(time.Minute),
			},
		},
		AllowedCountries:  []string{"US", "CA", "GB", "SE"},
		PerCountryPerHour: 30,
		Delivery:          &delivery.Config{Workers: 3, Retries: -1, Wait: caddy.Duration(2 * time.Second)},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config = %+v\nwant     %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}

func TestUnmarshalCaddyfileProviders(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  map[string]any
	}{
		{
			name: "twilio with messaging service and api_url",
			input: `sms {
				provider twilio {
					account_sid AC0123456789abcdef0123456789abcdef
					auth_token {env.T}
					messaging_service_sid MG0123456789abcdef0123456789abcdef
					api_url https://api.dublin.ie1.twilio.com
				}
			}`,
			want: map[string]any{
				"provider": "twilio", "account_sid": "AC0123456789abcdef0123456789abcdef", "auth_token": "{env.T}",
				"messaging_service_sid": "MG0123456789abcdef0123456789abcdef", "api_url": "https://api.dublin.ie1.twilio.com",
			},
		},
		{
			name: "webhook",
			input: `sms {
				provider webhook https://sms.internal/send {
					method put
					header Authorization "Bearer {env.GW_TOKEN}"
					header X-Tenant mfa
					format form
					body "to={to}&text={message}"
					timeout 3s
				}
			}`,
			want: map[string]any{
				"provider": "webhook", "url": "https://sms.internal/send", "method": "PUT",
				"headers": map[string]any{"Authorization": "Bearer {env.GW_TOKEN}", "X-Tenant": "mfa"},
				"format":  "form", "body": "to={to}&text={message}", "timeout": float64(3 * time.Second),
			},
		},
		{
			name:  "webhook without block",
			input: "sms {\n provider webhook https://sms.internal/send\n}",
			want:  map[string]any{"provider": "webhook", "url": "https://sms.internal/send"},
		},
		{
			name:  "outbox",
			input: "sms {\n provider outbox ./sms-outbox\n}",
			want:  map[string]any{"provider": "outbox", "dir": "./sms-outbox"},
		},
		{
			name:  "third-party module",
			input: "sms {\n provider test_custom\n}",
			want:  map[string]any{"provider": "test_custom"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			if err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input)); err != nil {
				t.Fatalf("UnmarshalCaddyfile() = %v", err)
			}
			if got := rawMap(t, c.ProviderRaw); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("provider = %v\nwant       %v", got, tt.want)
			}
		})
	}
}

// customProvider has no Caddyfile unmarshaler; give it one for the test.
func (p *customProvider) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		p.Prefix = d.Val()
	}
	return nil
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"argument after sms", "sms on {\n}", "wrong argument count"},
		{"unknown subdirective", "sms {\n bogus 1\n}", `unrecognized sms subdirective "bogus"`},
		{"duplicate", "sms {\n code_ttl 1m\n code_ttl 2m\n}", `duplicate sms subdirective "code_ttl"`},
		{"two providers", "sms {\n provider outbox a\n provider outbox b\n}", `duplicate sms subdirective "provider"`},
		{"send other", "sms {\n send voice\n}", "must be code or link"},
		{"link_ttl zero", "sms {\n link_ttl 0s\n}", "must be positive"},
		{"link_ttl twice", "sms {\n link_ttl 5m\n link_ttl 6m\n}", `duplicate sms subdirective "link_ttl"`},
		{"link_message without %s", "sms {\n link_message \"Sign in\"\n}", "has no %s"},
		{"link_message twice", "sms {\n link_message \"a %s\"\n link_message \"b %s\"\n}", `duplicate sms subdirective "link_message"`},
		{"link_message language twice", "sms {\n link_message sv \"a %s\"\n link_message SV \"b %s\"\n}", `duplicate sms subdirective "link_message sv"`},
		{"registration", "sms {\n registration {\n require password\n }\n}", `unknown method "password"`},
		{"message without %s", "sms {\n message \"Your code\"\n}", "has no %s"},
		{"message with two %s", "sms {\n message \"%s %s\"\n}", "more than one %s"},
		{"message with %d", "sms {\n message \"Code %d\"\n}", "only %s"},
		{"message twice", "sms {\n message \"a %s\"\n message \"b %s\"\n}", `duplicate sms subdirective "message"`},
		{"language twice", "sms {\n message sv \"a %s\"\n message SV \"b %s\"\n}", `duplicate sms subdirective "message sv"`},
		{"bad language", "sms {\n message svenska! \"a %s\"\n}", "not a language tag"},
		{"message three args", "sms {\n message sv a %s\n}", "wrong argument count"},
		{"message no args", "sms {\n message\n}", "wrong argument count"},
		{"code_length 3", "sms {\n code_length 3\n}", "must be from 4 to 10"},
		{"code_length 0", "sms {\n code_length 0\n}", "at least 1"},
		{"code_ttl zero", "sms {\n code_ttl 0s\n}", "must be positive"},
		{"code_ttl bad", "sms {\n code_ttl soon\n}", "invalid code_ttl duration"},
		{"max_attempts off", "sms {\n max_attempts off\n}", "at least 1"},
		{"no countries", "sms {\n allowed_countries\n}", "wrong argument count"},
		{"unknown country", "sms {\n allowed_countries US XX\n}", `"XX" is not an ISO 3166-1`},
		{"country twice", "sms {\n allowed_countries US us\n}", "listed twice"},
		{"per_country_per_hour 0", "sms {\n per_country_per_hour 0\n}", "at least 1, or off"},
		{"throttle unknown", "sms {\n throttle {\n per_day 1\n }\n}", "unrecognized throttle subdirective"},
		{"throttle duplicate", "sms {\n throttle {\n per_hour 1\n per_hour 2\n }\n}", "duplicate throttle subdirective"},
		{"delivery unknown", "sms {\n delivery {\n pool 1\n }\n}", "unrecognized delivery subdirective"},
		{"provider without name", "sms {\n provider\n}", "wrong argument count"},
		{"unknown provider", "sms {\n provider carrier_pigeon\n}", "carrier_pigeon"},
		{"twilio argument", "sms {\n provider twilio AC1\n}", "wrong argument count"},
		{"twilio unknown", "sms {\n provider twilio {\n region ie1\n }\n}", `unrecognized twilio subdirective "region"`},
		{"twilio duplicate", "sms {\n provider twilio {\n from +1\n from +2\n }\n}", `duplicate twilio subdirective "from"`},
		{"twilio missing value", "sms {\n provider twilio {\n auth_token\n }\n}", "wrong argument count"},
		{"twilio bad timeout", "sms {\n provider twilio {\n timeout -1s\n }\n}", "must be positive"},
		{"webhook without url", "sms {\n provider webhook\n}", "wrong argument count"},
		{"webhook two urls", "sms {\n provider webhook https://a https://b\n}", "wrong argument count"},
		{"webhook method", "sms {\n provider webhook https://a {\n method GET\n }\n}", "POST, PUT or PATCH"},
		{"webhook format", "sms {\n provider webhook https://a {\n format xml\n }\n}", "json or form"},
		{"webhook header twice", "sms {\n provider webhook https://a {\n header X-A 1\n header x-a 2\n }\n}", "duplicate webhook header"},
		{"webhook header one arg", "sms {\n provider webhook https://a {\n header X-A\n }\n}", "wrong argument count"},
		{"webhook unknown", "sms {\n provider webhook https://a {\n retry 3\n }\n}", "unrecognized webhook subdirective"},
		{"outbox without dir", "sms {\n provider outbox\n}", "wrong argument count"},
		{"outbox two dirs", "sms {\n provider outbox a b\n}", "wrong argument count"},
		{"outbox block", "sms {\n provider outbox a {\n mode 0600\n }\n}", "takes no block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("UnmarshalCaddyfile() = nil, want error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q lacks %q", err, tt.want)
			}
		})
	}
}

// TestCaddyfileToDelivery goes from a Caddyfile sms block through
// provisioning to a text at a local Twilio.
func TestCaddyfileToDelivery(t *testing.T) {
	s := twiliotest.NewServer(t)
	t.Setenv("TEST_TWILIO_SID", twiliotest.AccountSID)
	t.Setenv("TEST_TWILIO_TOKEN", twiliotest.AuthToken)
	input := `sms {
		provider twilio {
			account_sid {env.TEST_TWILIO_SID}
			auth_token {env.TEST_TWILIO_TOKEN}
			from +12015550100
			api_url ` + s.URL + `
		}
		message "Your example.com code is %s"
		message sv "Din kod för example.com är %s"
		allowed_countries US CA
	}`
	var c Config
	if err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatalf("UnmarshalCaddyfile() = %v", err)
	}
	provision(t, &c, nil)
	if err := c.Deliver(WithLanguage(t.Context(), "sv"), testMessage()); err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	msgs := s.Messages()
	if len(msgs) != 1 || msgs[0].To != testTo || msgs[0].Body != "Din kod för example.com är "+testCode {
		t.Fatalf("messages = %+v", msgs)
	}
}
