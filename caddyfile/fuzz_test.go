package caddyfile

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
)

// FuzzUnmarshal feeds arbitrary text as the body of an mfa block. The
// parser, and the guest modules it hands tokens to, must never panic, and
// whatever they accept must encode as JSON; an accepted totp block and
// recovery_codes must also pass the authenticator's own checks, as must
// the messages, countries, send mode and code length of an accepted sms
// block, and an accepted policy, remember_device and trusted_networks the
// handler's.
func FuzzUnmarshal(f *testing.F) {
	seeds := []string{
		"",
		"user {http.auth.user.id}\npath_prefix /.mfa\nbase_url https://app.example.com",
		"user \"\"\ntrust_identity_headers\nusers {\n\talice email alice@example.com phone +12015550123\n\tbob disabled\n}",
		"storage badger /var/lib/caddy/mfa\nsecret_key {env.MFA_SECRET_KEY}\nsession_ttl 12h\nidle_timeout 1h",
		"users_file /etc/caddy/users.json\nallow_emails *@example.com bob@example.org\nlockout 10 15m",
		"email {\n\tsmtp smtp.example.com 465 {\n\t\tusername u\n\t\tpassword p\n\t\ttls implicit\n\t\ttimeout 10s\n\t}\n\tfrom \"Example <noreply@example.com>\"\n}",
		"email {\n\toutbox ./mailbox\n\tsend link\n\tcode_length 8\n\tcode_ttl 5m\n\tmax_attempts 3\n\tmax_sends 3\n}",
		"email {\n\ttransport test_api https://x {\n\t\tkey k\n\t}\n\taddress {http.request.header.Remote-Email}\n}",
		"email {\n\tthrottle {\n\t\tper_hour off\n\t\tper_5m 20\n\t\tcooldown 30s\n\t}\n\ttemplate subject \"Code\"\n\tdelivery {\n\t\tworkers 2\n\t\tretries 3\n\t\twait 5s\n\t}\n}",
		"email {\n\tthrottle {\n\t\t{\n\t\t}\n\t}\n}",
		"users {\n{\n}\n}\n}\n}",
		"lockout 5 {\n}",
		"email {\n\tsmtp {\n\t\tport\n\t}\n\tsmtp\n}",
		"storage badger {\n\tdir x\n}",
		"totp",
		"passkey {\n\tpasswordless on\n\tuser_verification required\n}",
		"totp {\n}\nrecovery_codes 10",
		"totp {\n\tissuer \"Example Corp\"\n\tdigits 8\n\tperiod 60s\n\talgorithm sha256\n\tskew 0\n\tenroll first_login\n}\nrecovery_codes 100",
		"totp {\n\tissuer {env.MFA_ISSUER}\n\tskew 2\n\tperiod 5m\n\talgorithm sha512\n\tenroll off\n}",
		"totp {\n\tdigits 7\n\tskew -1\n\tperiod 1500ms\n\t{\n\t}\n}",
		"totp on {\n\tenroll\n}\nrecovery_codes",
		"policy new_country\ngeoip_db /usr/share/GeoIP/GeoLite2-Country.mmdb\nremember_device 30d\ntrusted_networks private_ranges\ntrusted_networks 10.0.0.0/8 ::1 192.0.2.7",
		"policy never\nremember_device off\ntrusted_networks fd00::/8 {\n}",
		"policy new_ip\ngeoip_db {env.GEOIP_DB}\nremember_device 90m\ntrusted_networks ::ffff:10.0.0.0/104",
		"policy\ngeoip_db \"\"\nremember_device -1\ntrusted_networks 10.0.0.0/33 fe80::1%eth0/64 private_range",
		"sms {\n\tprovider outbox ./sms-outbox\n}",
		"sms {\n\tprovider twilio {\n\t\taccount_sid {env.TWILIO_ACCOUNT_SID}\n\t\tauth_token {env.TWILIO_AUTH_TOKEN}\n\t\tfrom +12015550100\n\t\tmessaging_service_sid MG0123456789abcdef0123456789abcdef\n\t\tapi_url http://127.0.0.1:8089\n\t\ttimeout 5s\n\t}\n\tmessage \"Your code is %s\"\n\tmessage sv \"Din kod är %s\"\n\tallowed_countries US ca GB SE\n}",
		"sms {\n\tprovider webhook https://sms.example.com/send {\n\t\tmethod put\n\t\theader Authorization \"Bearer {env.TOKEN}\"\n\t\tformat form\n\t\tbody \"to={to}&text={message}\"\n\t\ttimeout 3s\n\t}\n\tsend code\n\tcode_length 8\n\tcode_ttl 2m\n\tmax_attempts 5\n\tmax_sends 2\n\tper_country_per_hour off\n}",
		"sms {\n\tthrottle {\n\t\tper_hour off\n\t\tper_5m 5\n\t\tcooldown 1m\n\t}\n\tdelivery {\n\t\tworkers 2\n\t\tretries off\n\t\twait 2s\n\t}\n}\ntotp",
		"sms\nsms {\n\tprovider\n}",
		"sms {\n\tmessage %s%\n\tmessage sv-SE\n\tmessage x \"%d\"\n\tsend link\n\tcode_length 3\n\tallowed_countries XX se SE\n\tregistration\n}",
		"sms {\n\tprovider outbox {\n\t}\n\tprovider webhook {\n\t\theader a\n\t}\n}\n}",
		"} {",
		"realm corp\ncookie_domain example.com\nmethods totp recovery\nmax_age 10m",
		"realm\ncookie_domain .example.com x\nmethods otp totp totp\nmax_age 0",
		"methods email sms {\n}\nmax_age 1d",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		tokens, err := caddyfile.Tokenize([]byte("mfa {\n"+body+"\n}\n"), "Caddyfile")
		if err != nil {
			return
		}
		h, err := Unmarshal(caddyfile.NewDispenser(tokens))
		if err != nil {
			return
		}
		if h == nil {
			t.Fatal("Unmarshal returned neither a handler nor an error")
		}
		if _, err := json.Marshal(h); err != nil {
			t.Fatalf("encoding the accepted handler: %v", err)
		}
		// what the Caddyfile accepts in the totp block, the authenticator
		// accepts too
		if h.TOTP != nil {
			c := *h.TOTP
			c.ApplyDefaults()
			if err := c.Validate(); err != nil {
				t.Fatalf("accepted totp block fails validation: %v", err)
			}
		}
		// and what it accepts in the sms block that the sms package checks
		// at parse time, it accepts at provision too
		if c := h.SMS; c != nil {
			v := sms.Config{Message: c.Message, Messages: c.Messages, Send: c.Send, AllowedCountries: c.AllowedCountries}
			v.CodeLength = c.CodeLength
			if err := v.Validate(); err != nil {
				t.Fatalf("accepted sms block fails validation: %v", err)
			}
		}
		if n := h.RecoveryCodes; n != 0 && (n < totp.MinRecoveryCodes || n > totp.MaxRecoveryCodes) {
			t.Fatalf("accepted recovery_codes %d", n)
		}
		// and the policy settings are ones the handler can parse
		switch h.Policy {
		case "", "always", "never", "new_ip", "new_country":
		default:
			t.Fatalf("accepted policy %q", h.Policy)
		}
		if h.RememberDevice < 0 {
			t.Fatalf("accepted remember_device %d", h.RememberDevice)
		}
		// and methods and max_age are ones the handler can use
		for i, m := range h.Methods {
			if !slices.Contains(stepUpMethods, m) || slices.Contains(h.Methods[:i], m) {
				t.Fatalf("accepted methods %q", h.Methods)
			}
		}
		if h.MaxAge < 0 {
			t.Fatalf("accepted max_age %d", h.MaxAge)
		}
		for _, n := range h.TrustedNetworks {
			if _, err := caddyhttp.CIDRExpressionToPrefix(n); err != nil && n != privateRanges {
				t.Fatalf("accepted trusted_networks %q: %v", n, err)
			}
		}
	})
}
