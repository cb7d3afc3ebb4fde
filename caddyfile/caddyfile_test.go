package caddyfile

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the expected JSON of the golden files in testdata")

const goldenSeparator = "----------"

// TestAdapt adapts each testdata/*.caddyfiletest (a Caddyfile, a line of
// dashes, then the expected JSON or, for a file meant to fail, a fragment
// of the expected error) with Caddy's caddyfile adapter.
func TestAdapt(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no golden files in testdata")
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			input, expected, ok := strings.Cut(strings.ReplaceAll(string(data), "\r\n", "\n"), goldenSeparator)
			if !ok {
				t.Fatalf("no %q line", goldenSeparator)
			}
			input = strings.TrimSpace(input) + "\n"
			expected = strings.TrimSpace(expected)

			adapted, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(input), nil)

			if expected != "" && expected[0] != '{' {
				if err == nil {
					t.Fatalf("adapting succeeded; want an error containing %q", expected)
				}
				if !strings.Contains(err.Error(), expected) {
					t.Fatalf("error %q does not contain %q", err, expected)
				}
				return
			}
			if err != nil {
				t.Fatalf("adapting: %v", err)
			}
			for _, w := range warnings {
				t.Errorf("warning: %s", w)
			}
			got := indentJSON(t, adapted)

			if *update {
				out := input + goldenSeparator + "\n" + got + "\n"
				if err := os.WriteFile(file, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if want := indentJSON(t, []byte(expected)); got != want {
				t.Errorf("adapted JSON differs\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
}

// indentJSON normalises a JSON document: decoded, then encoded with tabs
// and sorted object keys, as Caddy's golden files are written.
func indentJSON(t *testing.T, data []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decoding JSON: %v\n%s", err, data)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "\t")
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(buf.String())
}

// TestUnmarshal checks the values that JSON alone cannot show plainly: an
// empty user is kept as an explicit empty string, "off" is -1 (but
// remember_device off is left out, as the default), a totp skew of 0 is
// -1 too, trusted_networks lines add up, and the sms block goes to the sms
// package whole, with parsing going on after its closing brace.
func TestUnmarshal(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string // the handler as JSON
	}{
		{
			name:  "no block",
			input: `mfa`,
			want:  `{}`,
		},
		{
			name:  "empty block",
			input: "mfa {\n}",
			want:  `{}`,
		},
		{
			name:  "standalone user",
			input: "mfa {\n\tuser \"\"\n}",
			want:  `{"user":""}`,
		},
		{
			name:  "placeholder user",
			input: "mfa {\n\tuser {http.request.header.Remote-User}\n\ttrust_identity_headers\n}",
			want:  `{"user":"{http.request.header.Remote-User}","trust_identity_headers":true}`,
		},
		{
			// SECURITY.md K49, K50
			name:  "realm and step-up",
			input: "mfa {\n\trealm corp.sso\n\tcookie_domain example.com\n\tmethods totp recovery\n\tmax_age 10m\n}",
			want:  `{"realm":"corp.sso","cookie_domain":"example.com","methods":["totp","recovery"],"max_age":600000000000}`,
		},
		{
			name:  "days",
			input: "mfa {\n\tsession_ttl 30d\n\tidle_timeout 90m\n}",
			want:  `{"session_ttl":2592000000000000,"idle_timeout":5400000000000}`,
		},
		{
			name:  "lockout",
			input: "mfa {\n\tlockout 10 15m\n}",
			want:  `{"lockout":{"failures":10,"window":900000000000}}`,
		},
		{
			name:  "lockout user_wide",
			input: "mfa {\n\tlockout 10 15m {\n\t\tuser_wide 50 12h\n\t}\n}",
			want:  `{"lockout":{"failures":10,"window":900000000000,"user_failures":50,"user_window":43200000000000}}`,
		},
		{
			name:  "throttle off",
			input: "mfa {\n\temail {\n\t\tthrottle {\n\t\t\tper_hour off\n\t\t\tper_ip_per_hour 3\n\t\t\tcooldown off\n\t\t}\n\t}\n}",
			want:  `{"email":{"throttle":{"per_hour":-1,"per_ip_per_hour":3,"cooldown":-1}}}`,
		},
		{
			name:  "third-party transport",
			input: "mfa {\n\temail {\n\t\ttransport test_api https://mail.example.net/send {\n\t\t\tkey {env.MAIL_KEY}\n\t\t}\n\t\tfrom noreply@example.com\n\t}\n}",
			want:  `{"email":{"transport":{"endpoint":"https://mail.example.net/send","key":"{env.MAIL_KEY}","transport":"test_api"},"from":"noreply@example.com"}}`,
		},
		{
			name:  "templates",
			input: "mfa {\n\temail {\n\t\ttemplate subject \"Your code for {{.Site}}\"\n\t\ttemplate html /etc/caddy/mail.html\n\t}\n}",
			want:  `{"email":{"templates":{"subject":"Your code for {{.Site}}","html_file":"/etc/caddy/mail.html"}}}`,
		},
		{
			name:  "users",
			input: "mfa {\n\tusers {\n\t\talice email alice@example.com phone +12015550123\n\t\tbob disabled\n\t\tcarol\n\t}\n}",
			want:  `{"users":[{"name":"alice","email":"alice@example.com","phone":"+12015550123"},{"name":"bob","disabled":true},{"name":"carol"}]}`,
		},
		{
			name:  "sms outbox",
			input: "mfa {\n\tsms {\n\t\tprovider outbox ./sms-outbox\n\t}\n}",
			want:  `{"sms":{"provider":{"provider":"outbox","dir":"./sms-outbox"}}}`,
		},
		{
			// the provider is required, but checked at provision, as the
			// email transport is
			name:  "sms without block",
			input: "mfa {\n\tsms\n}",
			want:  `{"sms":{}}`,
		},
		{
			name:  "sms block ends at its brace",
			input: "mfa {\n\tsms {\n\t\tprovider outbox ./sms-outbox\n\t\tmessage \"Code: %s\"\n\t}\n\ttotp\n\tpath_prefix /.mfa\n}",
			want:  `{"path_prefix":"/.mfa","sms":{"provider":{"provider":"outbox","dir":"./sms-outbox"},"message":"Code: %s"},"totp":{}}`,
		},
		{
			name:  "translations",
			input: "mfa {\n\ttranslations /etc/caddy/mfa-translations\n\tsite_name \"Example Corp\"\n\tlogo logo.svg\n\tcss brand.css\n\ttemplates ./templates\n}",
			want:  `{"translations":"/etc/caddy/mfa-translations","site_name":"Example Corp","logo":"logo.svg","css":"brand.css","templates":"./templates"}`,
		},
		{
			name:  "sms webhook without block",
			input: "mfa {\n\tsms {\n\t\tprovider webhook {env.SMS_GATEWAY_URL}\n\t\tmessage sv \"Din kod är %s\"\n\t}\n}",
			want:  `{"sms":{"provider":{"provider":"webhook","url":"{env.SMS_GATEWAY_URL}"},"messages":{"sv":"Din kod är %s"}}}`,
		},
		{
			name:  "sms off",
			input: "mfa {\n\tsms {\n\t\tprovider outbox ./sms-outbox\n\t\tper_country_per_hour off\n\t\tthrottle {\n\t\t\tper_hour off\n\t\t\tcooldown off\n\t\t}\n\t\tdelivery {\n\t\t\tretries off\n\t\t}\n\t}\n}",
			want:  `{"sms":{"provider":{"provider":"outbox","dir":"./sms-outbox"},"per_country_per_hour":-1,"throttle":{"per_hour":-1,"cooldown":-1},"delivery":{"retries":-1}}}`,
		},
		{
			// one delivery block for both channels: off turns retries off
			name:  "email delivery retries off",
			input: "mfa {\n\temail {\n\t\toutbox ./mailbox\n\t\tdelivery {\n\t\t\tworkers 1\n\t\t\tretries off\n\t\t}\n\t}\n}",
			want:  `{"email":{"transport":{"transport":"outbox","dir":"./mailbox"},"delivery":{"workers":1,"retries":-1}}}`,
		},
		{
			name:  "email registration",
			input: "mfa {\n\temail {\n\t\toutbox ./mailbox\n\t\tregistration {\n\t\t\trequire totp sms\n\t\t\tshow_info on\n\t\t}\n\t}\n}",
			want:  `{"email":{"transport":{"transport":"outbox","dir":"./mailbox"},"registration":{"require":["totp","sms"],"show_info":true}}}`,
		},
		{
			name:  "sms registration",
			input: "mfa {\n\tsms {\n\t\tprovider outbox ./sms-outbox\n\t\tregistration {\n\t\t\tduring_login on\n\t\t\trequire totp\n\t\t\tshow_info off\n\t\t}\n\t}\n}",
			want:  `{"sms":{"provider":{"provider":"outbox","dir":"./sms-outbox"},"registration":{"during_login":true,"require":["totp"]}}}`,
		},
		{
			name:  "sms third-party provider",
			input: "mfa {\n\tsms {\n\t\tprovider test_gateway https://sms.example.net/send {\n\t\t\tkey {env.SMS_KEY}\n\t\t}\n\t}\n}",
			want:  `{"sms":{"provider":{"provider":"test_gateway","endpoint":"https://sms.example.net/send","key":"{env.SMS_KEY}"}}}`,
		},
		{
			name:  "policy",
			input: "mfa {\n\tpolicy new_ip\n\tremember_device 30d\n}",
			want:  `{"policy":"new_ip","remember_device":2592000000000000}`,
		},
		{
			name:  "link_cross_device",
			input: "mfa {\n\tuser \"\"\n\tlink_cross_device on\n}",
			want:  `{"user":"","link_cross_device":true}`,
		},
		{
			name:  "remember_device off",
			input: "mfa {\n\tpolicy never\n\tremember_device off\n}",
			want:  `{"policy":"never"}`,
		},
		{
			name:  "geoip_db placeholder",
			input: "mfa {\n\tpolicy new_country\n\tgeoip_db {env.GEOIP_DB}\n}",
			want:  `{"policy":"new_country","geoip_db":"{env.GEOIP_DB}"}`,
		},
		{
			name:  "trusted_networks lines add up",
			input: "mfa {\n\ttrusted_networks private_ranges\n\ttrusted_networks 203.0.113.0/24 198.51.100.7\n\ttrusted_networks 2001:db8::/32 ::ffff:192.0.2.1\n}",
			want:  `{"trusted_networks":["private_ranges","203.0.113.0/24","198.51.100.7","2001:db8::/32","::ffff:192.0.2.1"]}`,
		},
		{
			name:  "totp without block",
			input: "mfa {\n\ttotp\n}",
			want:  `{"totp":{}}`,
		},
		{
			name:  "totp empty block",
			input: "mfa {\n\ttotp {\n\t}\n\trecovery_codes 100\n}",
			want:  `{"totp":{},"recovery_codes":100}`,
		},
		{
			name:  "totp skew 0 is none",
			input: "mfa {\n\ttotp {\n\t\tskew 0\n\t}\n}",
			want:  `{"totp":{"skew":-1}}`,
		},
		{
			name:  "totp skew 2",
			input: "mfa {\n\ttotp {\n\t\tskew 2\n\t\tperiod 5m\n\t\talgorithm sha512\n\t\tenroll off\n\t}\n}",
			want:  `{"totp":{"skew":2,"period":300000000000,"algorithm":"sha512","enroll":"off"}}`,
		},
		{
			name:  "totp issuer placeholder",
			input: "mfa {\n\ttotp {\n\t\tissuer {env.MFA_ISSUER}\n\t\tperiod 15s\n\t}\n}",
			want:  `{"totp":{"issuer":"{env.MFA_ISSUER}","period":15000000000}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := Unmarshal(caddyfile.NewTestDispenser(tt.input))
			if err != nil {
				t.Fatalf("Unmarshal: %v", err)
			}
			got, err := json.Marshal(h)
			if err != nil {
				t.Fatal(err)
			}
			if indentJSON(t, got) != indentJSON(t, []byte(tt.want)) {
				t.Errorf("got %s\nwant %s", got, tt.want)
			}
		})
	}
}

// TestUnmarshalErrors checks that bad input is refused with a message that
// names the offending token and its line.
func TestUnmarshalErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string // the body of the mfa block, starting on line 2
		want  string // a fragment of the error
		line  int
	}{
		{"unknown subdirective", "bogus 1", `unrecognized mfa subdirective "bogus"`, 2},
		{"realm without argument", "realm", "after 'realm'", 2},
		{"realm with two arguments", "realm a b", "after 'b'", 2},
		{"realm repeated", "realm a\nrealm b", `duplicate mfa subdirective "realm"`, 3},
		{"cookie_domain without argument", "cookie_domain", "after 'cookie_domain'", 2},
		{"methods without argument", "methods", "after 'methods'", 2},
		{"methods unknown", "methods totp otp", `unknown method "otp" in methods`, 2},
		{"methods misspelt", "methods tottp", `did you mean "totp"?`, 2},
		{"methods twice", "methods totp totp", `method "totp" is listed twice`, 2},
		{"methods with a block", "methods totp {\n\tx\n}", "methods takes no block", 3},
		{"max_age without argument", "max_age", "after 'max_age'", 2},
		{"max_age zero", "max_age 0s", `invalid max_age duration "0s"`, 2},
		{"max_age negative", "max_age -10m", `invalid max_age duration "-10m"`, 2},
		{"max_age not a duration", "max_age soon", `invalid max_age duration "soon"`, 2},
		{"duplicate subdirective", "path_prefix /a\npath_prefix /b", `duplicate mfa subdirective "path_prefix"`, 3},
		{"duplicate email block", "email {\n}\nemail {\n}", `duplicate mfa subdirective "email"`, 4},
		{"missing argument", "path_prefix", "after 'path_prefix'", 2},
		{"extra argument", "base_url https://a.example https://b.example", "after 'https://b.example'", 2},
		{"user without argument", "user", "after 'user'", 2},
		{"flag with argument", "trust_identity_headers yes", "after 'yes'", 2},
		{"unexpected block", "secret_key abc {\n\tx\n}", "secret_key takes no block", 3},
		{"unexpected block after duration", "email {\n\tcode_ttl 5m {\n\t\tx\n\t}\n}", "code_ttl takes no block", 4},
		{"unexpected block after flag", "trust_identity_headers {\n\tx\n}", "trust_identity_headers takes no block", 3},
		{"unexpected block after user", "users {\n\talice {\n\t\tx\n\t}\n}", `mfa user "alice" takes no block`, 4},
		{"bad duration", "session_ttl forever", `invalid session_ttl duration "forever"`, 2},
		{"zero duration", "idle_timeout 0s", `invalid idle_timeout duration "0s"`, 2},
		{"negative duration", "session_ttl -1h", `invalid session_ttl duration "-1h"`, 2},
		{"allow_emails without argument", "allow_emails", "after 'allow_emails'", 2},
		{"allow_emails repeated", "allow_emails *@a.example\nallow_emails *@b.example", `duplicate mfa subdirective "allow_emails"`, 3},
		{"lockout with one argument", "lockout 5", "after '5'", 2},
		{"lockout with three arguments", "lockout 5 15m extra", "after 'extra'", 2},
		{"lockout bad failures", "lockout ten 15m", `invalid lockout failures "ten"`, 2},
		{"lockout zero failures", "lockout 0 15m", `invalid lockout failures "0"`, 2},
		{"lockout bad window", "lockout 5 soon", `invalid lockout window duration "soon"`, 2},
		{"lockout unknown subdirective", "lockout 5 15m {\n\tglobal 5 1h\n}", `unrecognized lockout subdirective "global"`, 3},
		{"lockout user_wide twice", "lockout 5 15m {\n\tuser_wide 50 1h\n\tuser_wide 60 1h\n}", `duplicate lockout subdirective "user_wide"`, 4},
		{"lockout user_wide one argument", "lockout 5 15m {\n\tuser_wide 50\n}", "after '50'", 3},
		{"lockout user_wide bad window", "lockout 5 15m {\n\tuser_wide 50 later\n}", `invalid user_wide window duration "later"`, 3},
		{"storage without backend", "storage", "after 'storage'", 2},
		{"unknown storage module", "storage nosuch /tmp", "mfa.storage.nosuch", 2},
		{"storage not a store", "storage test_not_a_store", "module mfa.storage.test_not_a_store is not an mfa store", 2},
		{"users with argument", "users alice {\n}", "after 'alice'", 2},
		{"unknown user option", "users {\n\talice mail alice@example.com\n}", `unrecognized mfa user "alice" subdirective "mail"; did you mean "email"?`, 3},
		{"user email without value", "users {\n\talice email\n}", "after 'email'", 3},
		{"duplicate user option", "users {\n\talice email a@example.com email b@example.com\n}", `duplicate mfa user "alice" subdirective "email"`, 3},
		{"duplicate user", "users {\n\talice\n\talice disabled\n}", `duplicate mfa user "alice"`, 4},
		{"nested block in users", "users {\n\t{\n\t}\n}", `unexpected "{" in mfa users block`, 3},
		{"empty user name", "users {\n\t\"\" email a@example.com\n}", "mfa user name cannot be empty", 3},
		{"email with argument", "email smtp {\n}", "after 'smtp'", 2},
		{"unknown email subdirective", "email {\n\tbogus\n}", `unrecognized mfa email subdirective "bogus"`, 3},
		{"duplicate email subdirective", "email {\n\tfrom a@example.com\n\tfrom b@example.com\n}", `duplicate mfa email subdirective "from"`, 4},
		{"two transports", "email {\n\ttransport test_api https://a.example\n\ttransport test_api https://b.example\n}", `duplicate mfa email transport "transport"`, 4},
		{"transport without module", "email {\n\ttransport\n}", "after 'transport'", 3},
		{"unknown transport module", "email {\n\ttransport carrier_pigeon\n}", "mfa.email_transports.carrier_pigeon", 3},
		{"transport module error", "email {\n\ttransport test_api https://a.example {\n\t\tsecret x\n\t}\n}", `unrecognized test_api subdirective "secret"`, 4},
		{"bad code_length", "email {\n\tcode_length six\n}", `invalid code_length "six"`, 3},
		{"zero max_attempts", "email {\n\tmax_attempts 0\n}", `invalid max_attempts "0"`, 3},
		{"negative max_sends", "email {\n\tmax_sends -3\n}", `invalid max_sends "-3"`, 3},
		{"max_attempts off", "email {\n\tmax_attempts off\n}", `invalid max_attempts "off"`, 3},
		{"bad code_ttl", "email {\n\tcode_ttl 10\n}", `invalid code_ttl duration "10"`, 3},
		{"code_ttl with two arguments", "email {\n\tcode_ttl 10m 5m\n}", "after '5m'", 3},
		{"from with two arguments", "email {\n\tfrom Example noreply@example.com\n}", "after 'noreply@example.com'", 3},
		{"unknown throttle subdirective", "email {\n\tthrottle {\n\t\tper_day 5\n\t}\n}", `unrecognized throttle subdirective "per_day"`, 4},
		{"bad throttle value", "email {\n\tthrottle {\n\t\tper_hour many\n\t}\n}", `invalid per_hour "many"`, 4},
		{"zero throttle value", "email {\n\tthrottle {\n\t\tper_5m 0\n\t}\n}", `invalid per_5m "0"`, 4},
		{"duplicate throttle subdirective", "email {\n\tthrottle {\n\t\tper_hour 5\n\t\tper_hour 6\n\t}\n}", `duplicate throttle subdirective "per_hour"`, 5},
		{"bad cooldown", "email {\n\tthrottle {\n\t\tcooldown a-while\n\t}\n}", `invalid cooldown duration "a-while"`, 4},
		{"unknown template", "email {\n\ttemplate footer x\n}", `unrecognized template "footer"`, 3},
		{"template without value", "email {\n\ttemplate subject\n}", "after 'subject'", 3},
		{"duplicate template", "email {\n\ttemplate text a.txt\n\ttemplate text b.txt\n}", `duplicate mfa email subdirective "template text"`, 4},
		{"unknown delivery subdirective", "email {\n\tdelivery {\n\t\tqueue 5\n\t}\n}", `unrecognized delivery subdirective "queue"`, 4},
		{"zero workers", "email {\n\tdelivery {\n\t\tworkers 0\n\t}\n}", `invalid workers "0"`, 4},
		{"bad wait", "email {\n\tdelivery {\n\t\twait 5x\n\t}\n}", `invalid wait duration "5x"`, 4},
		{"unknown policy", "policy sometimes", `unrecognized mfa policy "sometimes": must be always, never, new_ip or new_country`, 2},
		{"policy in capitals", "policy ALWAYS", `unrecognized mfa policy "ALWAYS"`, 2},
		{"policy without value", "policy", "after 'policy'", 2},
		{"policy with two values", "policy new_ip new_country", "after 'new_country'", 2},
		{"duplicate policy", "policy new_ip\npolicy never", `duplicate mfa subdirective "policy"`, 3},
		{"unexpected block after policy", "policy never {\n\tx\n}", "policy takes no block", 3},
		{"geoip_db without path", "geoip_db", "after 'geoip_db'", 2},
		{"geoip_db empty", "geoip_db \"\"", "geoip_db needs the path of a country database", 2},
		{"geoip_db with two paths", "geoip_db a.mmdb b.mmdb", "after 'b.mmdb'", 2},
		{"duplicate geoip_db", "geoip_db a.mmdb\ngeoip_db b.mmdb", `duplicate mfa subdirective "geoip_db"`, 3},
		{"bad remember_device", "remember_device forever", `invalid remember_device "forever": must be a positive duration, such as 30d, or off`, 2},
		{"zero remember_device", "remember_device 0s", `invalid remember_device "0s"`, 2},
		{"negative remember_device", "remember_device -24h", `invalid remember_device "-24h"`, 2},
		{"remember_device in capitals", "remember_device OFF", `invalid remember_device "OFF"`, 2},
		{"remember_device without value", "remember_device", "after 'remember_device'", 2},
		{"remember_device with two values", "remember_device off 30d", "after '30d'", 2},
		{"duplicate remember_device", "remember_device 30d\nremember_device off", `duplicate mfa subdirective "remember_device"`, 3},
		{"unexpected block after remember_device", "remember_device 30d {\n\tx\n}", "remember_device takes no block", 3},
		{"trusted_networks without value", "trusted_networks", "after 'trusted_networks'", 2},
		{"trusted_networks name", "trusted_networks intranet", `invalid trusted_networks "intranet": must be a CIDR such as 10.0.0.0/8, an IP address, or private_ranges`, 2},
		{"trusted_networks bad prefix length", "trusted_networks 10.0.0.0/33", `invalid trusted_networks "10.0.0.0/33"`, 2},
		{"trusted_networks short address", "trusted_networks 192.168.1/24", `invalid trusted_networks "192.168.1/24"`, 2},
		{"trusted_networks zone in prefix", "trusted_networks fe80::1%eth0/64", `invalid trusted_networks "fe80::1%eth0/64"`, 2},
		{"trusted_networks misspelt shorthand", "trusted_networks private_range", `invalid trusted_networks "private_range"`, 2},
		{"trusted_networks bad on a later line", "trusted_networks private_ranges\ntrusted_networks 10.0.0.0/8 10.0.0.0/8/8", `invalid trusted_networks "10.0.0.0/8/8"`, 3},
		{"unexpected block after trusted_networks", "trusted_networks 10.0.0.0/8 {\n\tx\n}", "trusted_networks takes no block", 3},
		{"totp with argument", "totp on", "after 'on'", 2},
		{"duplicate totp block", "totp\ntotp {\n}", `duplicate mfa subdirective "totp"`, 3},
		{"unknown totp subdirective", "totp {\n\tlabel Example\n}", `unrecognized mfa totp subdirective "label"`, 3},
		{"duplicate totp subdirective", "totp {\n\tdigits 6\n\tdigits 8\n}", `duplicate mfa totp subdirective "digits"`, 4},
		{"issuer without value", "totp {\n\tissuer\n}", "after 'issuer'", 3},
		{"issuer with two values", "totp {\n\tissuer Example Corp\n}", "after 'Corp'", 3},
		{"wrong digits", "totp {\n\tdigits 7\n}", `invalid digits "7": must be 6 or 8`, 3},
		{"digits not a number", "totp {\n\tdigits six\n}", `invalid digits "six": must be 6 or 8`, 3},
		{"digits without value", "totp {\n\tdigits\n}", "after 'digits'", 3},
		{"bad period", "totp {\n\tperiod half-a-minute\n}", `invalid period duration "half-a-minute"`, 3},
		{"period too short", "totp {\n\tperiod 10s\n}", `invalid period duration "10s": must be from 15s to 5m0s`, 3},
		{"period too long", "totp {\n\tperiod 1h\n}", `invalid period duration "1h": must be from 15s to 5m0s`, 3},
		{"period not whole seconds", "totp {\n\tperiod 30500ms\n}", `invalid period duration "30500ms": must be a whole number of seconds`, 3},
		{"unknown algorithm", "totp {\n\talgorithm md5\n}", `unrecognized totp algorithm "md5": must be sha1, sha256 or sha512`, 3},
		{"algorithm in capitals", "totp {\n\talgorithm SHA1\n}", `unrecognized totp algorithm "SHA1"`, 3},
		{"skew out of range", "totp {\n\tskew 3\n}", `invalid skew "3": must be a whole number from 0 to 2`, 3},
		{"negative skew", "totp {\n\tskew -1\n}", `invalid skew "-1": must be a whole number from 0 to 2`, 3},
		{"skew not a number", "totp {\n\tskew one\n}", `invalid skew "one"`, 3},
		{"unknown enroll policy", "totp {\n\tenroll always\n}", `unrecognized totp enroll policy "always": must be verified, first_login or off`, 3},
		{"enroll with two values", "totp {\n\tenroll verified off\n}", "after 'off'", 3},
		{"unexpected block in totp", "totp {\n\tdigits 6 {\n\t\tx\n\t}\n}", "digits takes no block", 4},
		{"sms with argument", "sms twilio {\n}", "after 'twilio'", 2},
		{"duplicate sms block", "sms {\n}\nsms {\n}", `duplicate mfa subdirective "sms"`, 4},
		{"unknown sms subdirective", "sms {\n\tsender Example\n}", `unrecognized sms subdirective "sender"`, 3},
		{"sms provider without name", "sms {\n\tprovider\n}", "after 'provider'", 3},
		{"unknown sms provider", "sms {\n\tprovider carrier_pigeon\n}", "mfa.sms_providers.carrier_pigeon", 3},
		{"two sms providers", "sms {\n\tprovider outbox a\n\tprovider outbox b\n}", `duplicate sms subdirective "provider"`, 4},
		{"unknown twilio subdirective", "sms {\n\tprovider twilio {\n\t\tregion ie1\n\t}\n}", `unrecognized twilio subdirective "region"`, 4},
		{"twilio with argument", "sms {\n\tprovider twilio AC123 {\n\t}\n}", "after 'AC123'", 3},
		{"webhook without url", "sms {\n\tprovider webhook\n}", "after 'webhook'", 3},
		{"webhook bad method", "sms {\n\tprovider webhook https://sms.example.com {\n\t\tmethod GET\n\t}\n}", `webhook method must be POST, PUT or PATCH, not "GET"`, 4},
		{"outbox without dir", "sms {\n\tprovider outbox\n}", "after 'outbox'", 3},
		{"sms provider module error", "sms {\n\tprovider test_gateway https://a.example {\n\t\tsecret x\n\t}\n}", `unrecognized test_gateway subdirective "secret"`, 4},
		{"sms message without code", "sms {\n\tmessage \"Your code\"\n}", "message has no %s", 3},
		{"sms message with two codes", "sms {\n\tmessage \"%s or %s\"\n}", "message has more than one %s", 3},
		{"sms message bad language", "sms {\n\tmessage xx-!! \"Code %s\"\n}", `message: "xx-!!" is not a language tag`, 3},
		{"duplicate sms message language", "sms {\n\tmessage sv \"Kod %s\"\n\tmessage SV \"Din kod %s\"\n}", `duplicate sms subdirective "message sv"`, 4},
		{"sms send voice", "sms {\n\tsend voice\n}", `sms send must be code or link, not "voice"`, 3},
		{"sms link_ttl zero", "sms {\n\tlink_ttl 0s\n}", "must be positive", 3},
		{"email link_ttl not a duration", "email {\n\tlink_ttl soon\n}", "soon", 3},
		{"sms code_length out of range", "sms {\n\tcode_length 12\n}", "invalid code_length 12: must be from 4 to 10", 3},
		{"sms unknown country", "sms {\n\tallowed_countries US XX\n}", `allowed_countries: "XX" is not an ISO 3166-1 alpha-2 code`, 3},
		{"sms country twice", "sms {\n\tallowed_countries se SE\n}", `allowed_countries: "SE" is listed twice`, 3},
		{"sms zero per_country_per_hour", "sms {\n\tper_country_per_hour 0\n}", `invalid per_country_per_hour "0"`, 3},
		{"sms bad delivery retries", "sms {\n\tdelivery {\n\t\tretries none\n\t}\n}", `invalid retries "none"`, 4},
		{"email bad delivery retries", "email {\n\tdelivery {\n\t\tretries 0\n\t}\n}", `invalid retries "0": must be a whole number of at least 1, or off`, 4},
		{"email delivery workers off", "email {\n\tdelivery {\n\t\tworkers off\n\t}\n}", `invalid workers "off": must be a whole number of at least 1`, 4},
		{"duplicate email delivery wait", "email {\n\tdelivery {\n\t\twait 1s\n\t\twait 2s\n\t}\n}", `duplicate delivery subdirective "wait"`, 5},
		{"sms registration unknown method", "sms {\n\tregistration {\n\t\trequire totp voice\n\t}\n}", `registration: require: unknown method "voice"`, 4},
		{"error after the sms block", "sms {\n\tprovider outbox ./sms-outbox\n}\nbogus", `unrecognized mfa subdirective "bogus"`, 5},
		{"recovery_codes not a number", "recovery_codes ten", `invalid recovery_codes "ten": must be a whole number from 10 to 100`, 2},
		{"recovery_codes too few", "recovery_codes 9", `invalid recovery_codes "9": must be a whole number from 10 to 100`, 2},
		{"recovery_codes too many", "recovery_codes 101", `invalid recovery_codes "101"`, 2},
		{"recovery_codes without value", "recovery_codes", "after 'recovery_codes'", 2},
		{"duplicate recovery_codes", "recovery_codes 10\nrecovery_codes 20", `duplicate mfa subdirective "recovery_codes"`, 3},
		// "did you mean" in the mfa block and in every block below it.
		{"typo in mfa", "sesion_ttl 1h", `unrecognized mfa subdirective "sesion_ttl"; did you mean "session_ttl"?`, 2},
		{"typo in a user line", "users {\n\talice emial alice@example.com\n}", `unrecognized mfa user "alice" subdirective "emial"; did you mean "email"?`, 3},
		{"typo in email", "email {\n\tcode_tll 5m\n}", `unrecognized mfa email subdirective "code_tll"; did you mean "code_ttl"?`, 3},
		{"typo in smtp", "email {\n\tsmtp smtp.example.com {\n\t\tpasword x\n\t}\n}", `unrecognized smtp subdirective "pasword"; did you mean "password"?`, 4},
		{"typo in throttle", "email {\n\tthrottle {\n\t\tper_hours 5\n\t}\n}", `unrecognized throttle subdirective "per_hours"; did you mean "per_hour"?`, 4},
		{"typo in delivery", "email {\n\tdelivery {\n\t\tworker 2\n\t}\n}", `unrecognized delivery subdirective "worker"; did you mean "workers"?`, 4},
		{"typo in sms", "sms {\n\tallowed_countris US\n}", `unrecognized sms subdirective "allowed_countris"; did you mean "allowed_countries"?`, 3},
		{"typo in twilio", "sms {\n\tprovider twilio {\n\t\tauth_tokn x\n\t}\n}", `unrecognized twilio subdirective "auth_tokn"; did you mean "auth_token"?`, 4},
		{"typo in webhook", "sms {\n\tprovider webhook https://sms.example {\n\t\tformatt json\n\t}\n}", `unrecognized webhook subdirective "formatt"; did you mean "format"?`, 4},
		{"typo in registration", "sms {\n\tregistration {\n\t\tduring_logn on\n\t}\n}", `unrecognized registration subdirective "during_logn"; did you mean "during_login"?`, 4},
		{"typo in lockout", "lockout 5 15m {\n\tuser_wid 20 1h\n}", `unrecognized lockout subdirective "user_wid"; did you mean "user_wide"?`, 3},
		{"typo in totp", "totp {\n\tisuer Example\n}", `unrecognized mfa totp subdirective "isuer"; did you mean "issuer"?`, 3},
		{"typo in storage badger", "storage badger /tmp/x {\n\tmin_fre 1GiB\n}", `unrecognized storage badger subdirective "min_fre"; did you mean "min_free"?`, 3},
		{"typo in storage redis", "storage redis {\n\tkey_prefx a/\n}", `unrecognized storage redis subdirective "key_prefx"; did you mean "key_prefix"?`, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := "mfa {\n" + tt.input + "\n}\n"
			h, err := Unmarshal(caddyfile.NewTestDispenser(input))
			if err == nil {
				got, _ := json.Marshal(h)
				t.Fatalf("no error; got %s\nwant an error containing %q", got, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if at := "Testfile:" + strconv.Itoa(tt.line); !strings.Contains(err.Error(), at) {
				t.Errorf("error %q does not name line %s", err, at)
			}
		})
	}
}

// TestUnmarshalDirectiveArguments checks that the directive itself takes no
// argument (a matcher is removed before Unmarshal runs).
func TestUnmarshalDirectiveArguments(t *testing.T) {
	_, err := Unmarshal(caddyfile.NewTestDispenser("mfa always {\n}"))
	if err == nil || !strings.Contains(err.Error(), "after 'always'") {
		t.Fatalf("got error %v; want one naming 'always'", err)
	}
}
