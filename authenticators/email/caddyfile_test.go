package email

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfileSMTP(t *testing.T) {
	on, off := true, false
	tests := []struct {
		name    string
		input   string
		want    SMTP
		wantErr bool
	}{
		{
			name:  "host only",
			input: `smtp smtp.example.com`,
			want:  SMTP{Host: "smtp.example.com"},
		},
		{
			name: "full",
			input: `smtp smtp.example.com 465 {
				username noreply@example.com
				password {env.SMTP_PASSWORD}
				auth on
				tls implicit
				timeout 5s
				idle_timeout 1m
				ca_file /etc/ssl/relay.pem
				insecure_skip_verify
				helo mfa.example.com
			}`,
			want: SMTP{
				Host: "smtp.example.com", Port: 465, Username: "noreply@example.com",
				Password: "{env.SMTP_PASSWORD}", Auth: &on, TLS: "implicit",
				Timeout: caddy.Duration(5e9), IdleTimeout: caddy.Duration(60e9),
				CAFile: "/etc/ssl/relay.pem", InsecureSkipVerify: true, HELO: "mfa.example.com",
			},
		},
		{
			name:  "auth off",
			input: "smtp relay.internal 25 {\n auth off\n tls none\n}",
			want:  SMTP{Host: "relay.internal", Port: 25, Auth: &off, TLS: "none"},
		},
		{name: "no host", input: `smtp`, wantErr: true},
		{name: "port not a number", input: `smtp smtp.example.com abc`, wantErr: true},
		{name: "port out of range", input: `smtp smtp.example.com 70000`, wantErr: true},
		{name: "extra argument", input: `smtp smtp.example.com 25 extra`, wantErr: true},
		{name: "unknown subdirective", input: "smtp h {\n bogus x\n}", wantErr: true},
		{name: "duplicate subdirective", input: "smtp h {\n username a\n username b\n}", wantErr: true},
		{name: "bad tls mode", input: "smtp h {\n tls always\n}", wantErr: true},
		{name: "bad auth", input: "smtp h {\n auth yes\n}", wantErr: true},
		{name: "bad timeout", input: "smtp h {\n timeout soon\n}", wantErr: true},
		{name: "missing value", input: "smtp h {\n password\n}", wantErr: true},
		{name: "two values", input: "smtp h {\n username a b\n}", wantErr: true},
		{name: "insecure with value", input: "smtp h {\n insecure_skip_verify yes\n}", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got SMTP
			err := got.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("UnmarshalCaddyfile() = nil, want error; got %+v", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile() = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestUnmarshalCaddyfileOutbox(t *testing.T) {
	var o Outbox
	if err := o.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`outbox ./mailbox`)); err != nil || o.Dir != "./mailbox" {
		t.Fatalf("got %+v, %v", o, err)
	}
	for _, in := range []string{`outbox`, `outbox a b`, "outbox a {\n x\n}"} {
		if err := new(Outbox).UnmarshalCaddyfile(caddyfile.NewTestDispenser(in)); err == nil {
			t.Errorf("UnmarshalCaddyfile(%q) = nil, want error", in)
		}
	}
}

func TestSMTPProvisionDefaults(t *testing.T) {
	t.Setenv("TEST_SMTP_USER", "mailer")
	tests := []struct {
		name     string
		s        SMTP
		port     int
		auth     bool
		mode     string
		validErr bool
	}{
		{name: "starttls default", s: SMTP{Host: "h"}, port: 587, mode: "starttls"},
		{name: "implicit", s: SMTP{Host: "h", TLS: "implicit"}, port: 465, mode: "implicit"},
		{name: "none", s: SMTP{Host: "h", TLS: "none"}, port: 25, mode: "none"},
		{name: "username turns auth on", s: SMTP{Host: "h", Username: "{env.TEST_SMTP_USER}", Password: "p"}, port: 587, auth: true, mode: "starttls"},
		{name: "auth off with username", s: SMTP{Host: "h", Username: "u", Auth: new(bool)}, port: 587, mode: "starttls"},
		{name: "auth without password", s: SMTP{Host: "h", Username: "u", Password: "{env.TEST_SMTP_UNSET}"}, port: 587, auth: true, mode: "starttls", validErr: true},
		{name: "no host", s: SMTP{}, port: 587, mode: "starttls", validErr: true},
		{name: "bad mode", s: SMTP{Host: "h", TLS: "sometimes"}, port: 587, mode: "sometimes", validErr: true},
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: t.Context()})
	defer cancel()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			if err := s.Provision(ctx); err != nil {
				t.Fatalf("Provision() = %v", err)
			}
			if s.port != tt.port || s.auth != tt.auth || s.mode != tt.mode || s.timeout != DefaultSMTPTimeout {
				t.Errorf("port %d auth %v mode %q timeout %v", s.port, s.auth, s.mode, s.timeout)
			}
			if tt.auth && s.username != "mailer" && s.username != "u" {
				t.Errorf("username = %q", s.username)
			}
			if err := s.Validate(); (err != nil) != tt.validErr {
				t.Errorf("Validate() = %v, want error %v", err, tt.validErr)
			}
		})
	}
}

// TestUnmarshalCaddyfileConfig reads an email block on its own, as the mfa
// directive hands it over, and checks the JSON it fills; the directive's
// golden files cover the rest of the grammar.
func TestUnmarshalCaddyfileConfig(t *testing.T) {
	tests := []struct {
		name, input, want, wantErr string
	}{
		{
			name:  "outbox and limits",
			input: "email {\n\toutbox ./mailbox\n\tfrom \"Example <noreply@example.com>\"\n\tsend link\n\tlink_ttl 15m\n\tcode_length 8\n\tmax_sends 2\n}",
			want:  `{"transport":{"dir":"./mailbox","transport":"outbox"},"from":"Example \u003cnoreply@example.com\u003e","send":"link","link_ttl":900000000000,"code_length":8,"max_sends":2}`,
		},
		{
			name:  "smtp, throttle, templates, delivery and registration",
			input: "email {\n\tsmtp mail.example.com 587 {\n\t\ttls starttls\n\t}\n\tthrottle {\n\t\tper_hour off\n\t}\n\ttemplate subject \"Code for {{.Site}}\"\n\ttemplate text /etc/mail.txt\n\tdelivery {\n\t\tretries off\n\t}\n\tregistration {\n\t\trequire totp\n\t}\n}",
			want:  `{"transport":{"host":"mail.example.com","port":587,"tls":"starttls","transport":"smtp"},"throttle":{"per_hour":-1},"templates":{"subject":"Code for {{.Site}}","text_file":"/etc/mail.txt"},"delivery":{"retries":-1},"registration":{"require":["totp"]}}`,
		},
		{name: "bare", input: "email", want: `{}`},
		{name: "argument", input: "email smtp", wantErr: "wrong argument count or unexpected line ending after 'smtp', at Testfile:1"},
		{name: "two transports", input: "email {\n\toutbox a\n\tsmtp b\n}", wantErr: `duplicate mfa email transport "smtp"`},
		{name: "template twice", input: "email {\n\ttemplate html a\n\ttemplate html b\n}", wantErr: `duplicate mfa email subdirective "template html"`},
		{name: "unknown template", input: "email {\n\ttemplate body a\n}", wantErr: `unrecognized template "body"`},
		{name: "unknown", input: "email {\n\tsender a\n}", wantErr: `unrecognized mfa email subdirective "sender", at Testfile:2`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Config
			err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("UnmarshalCaddyfile() = %v, want an error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UnmarshalCaddyfile() = %v", err)
			}
			got, _ := json.Marshal(&c)
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}
