package redis

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		name    string
		input   string
		want    *Store
		wantErr string
	}{
		{name: "bare", input: `redis`},
		{name: "url", input: `redis redis://alice:pw@cache:6380/2`, want: &Store{URL: "redis://alice:pw@cache:6380/2"}},
		{name: "tls url", input: `redis rediss://cache`, want: &Store{URL: "rediss://cache"}},
		{name: "placeholder url", input: `redis {env.REDIS_URL}`, want: &Store{URL: "{env.REDIS_URL}"}},
		{
			name: "every option",
			input: `redis rediss://cache:6380 {
				username alice
				password {env.REDIS_PASSWORD}
				db 3
				ca_file /etc/redis/ca.pem
				key_prefix site1/
				timeout 500ms
				pool_size 20
				wait_replicas 1
			}`,
			want: &Store{
				URL: "rediss://cache:6380", Username: "alice", Password: "{env.REDIS_PASSWORD}", DB: 3,
				CAFile: "/etc/redis/ca.pem", KeyPrefix: "site1/", Timeout: caddy.Duration(500 * time.Millisecond),
				PoolSize: 20, WaitReplicas: 1,
			},
		},
		{
			name:  "sentinel",
			input: "redis {\n sentinel mymaster 10.0.0.1:26379 10.0.0.2:26379\n db 0\n}",
			want:  &Store{Sentinel: &Sentinel{MasterName: "mymaster", Addresses: []string{"10.0.0.1:26379", "10.0.0.2:26379"}}},
		},

		{name: "two urls", input: `redis redis://a redis://b`, wantErr: "wrong argument count"},
		{name: "bad url scheme", input: `redis http://cache`, wantErr: "redis:// or rediss://"},
		{name: "bad url db", input: `redis redis://cache/x`, wantErr: "not a number"},
		{name: "password not echoed", input: `redis redis://u:hunter2@cache/x`, wantErr: "not a number"},
		{name: "unknown subdirective", input: "redis {\n tls on\n}", wantErr: `unrecognized storage redis subdirective "tls"`},
		{name: "duplicate subdirective", input: "redis {\n db 1\n db 2\n}", wantErr: `duplicate storage redis subdirective "db"`},
		{name: "username without value", input: "redis {\n username\n}", wantErr: "wrong argument count"},
		{name: "password with two values", input: "redis {\n password a b\n}", wantErr: "wrong argument count"},
		{name: "bad db", input: "redis {\n db -1\n}", wantErr: "invalid db"},
		{name: "db not a number", input: "redis {\n db one\n}", wantErr: "invalid db"},
		{name: "sentinel without address", input: "redis {\n sentinel mymaster\n}", wantErr: "sentinel needs"},
		{name: "sentinel and url", input: "redis redis://cache {\n sentinel m s:1\n}", wantErr: "not both"},
		{name: "sentinel with a block", input: "redis {\n sentinel m s:1 {\n x\n }\n}", wantErr: "takes no block"},
		{name: "empty key prefix", input: "redis {\n key_prefix \"\"\n}", wantErr: "key_prefix cannot be empty"},
		{name: "bad timeout", input: "redis {\n timeout soon\n}", wantErr: "invalid timeout duration"},
		{name: "zero timeout", input: "redis {\n timeout 0s\n}", wantErr: "must be positive"},
		{name: "bad pool size", input: "redis {\n pool_size 0\n}", wantErr: "at least 1"},
		{name: "bad wait_replicas", input: "redis {\n wait_replicas x\n}", wantErr: "at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s Store
			err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Errorf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == nil {
				want = new(Store)
			}
			if !reflect.DeepEqual(s.config(), want.config()) {
				t.Errorf("got  %+v\nwant %+v", s.config(), want.config())
			}
		})
	}
}

// config returns the exported configuration of s, for comparing.
func (s *Store) config() []any {
	return []any{s.URL, s.Username, s.Password, s.DB, s.CAFile, s.Sentinel, s.KeyPrefix, s.Timeout, s.PoolSize, s.WaitReplicas}
}

func TestParseURL(t *testing.T) {
	tests := []struct {
		in      string
		want    serverURL
		wantErr string
	}{
		{in: "redis://cache", want: serverURL{addr: "cache:6379"}},
		{in: "redis://cache:6380", want: serverURL{addr: "cache:6380"}},
		{in: "redis://cache/", want: serverURL{addr: "cache:6379"}},
		{in: "redis://cache:6380/15", want: serverURL{addr: "cache:6380", db: 15, hasDB: true}},
		{in: "rediss://cache", want: serverURL{addr: "cache:6379", tls: true}},
		{in: "redis://alice:s3cr%40t@cache", want: serverURL{addr: "cache:6379", username: "alice", password: "s3cr@t"}},
		{in: "redis://:pw@cache", want: serverURL{addr: "cache:6379", password: "pw"}},
		{in: "redis://[::1]:7000/0", want: serverURL{addr: "[::1]:7000", hasDB: true}},

		{in: "", wantErr: "scheme"},
		{in: "cache:6379", wantErr: "scheme"},
		{in: "unix:///tmp/redis.sock", wantErr: "scheme"},
		{in: "redis:cache", wantErr: "redis://host:port"},
		{in: "redis://", wantErr: "no host"},
		{in: "redis://:6379", wantErr: "no host"},
		{in: "redis://cache:", wantErr: "empty port"},
		{in: "redis://cache:0", wantErr: "invalid port"},
		{in: "redis://cache:99999", wantErr: "invalid port"},
		{in: "redis://cache/db", wantErr: "not a number"},
		{in: "redis://cache/-1", wantErr: "not a number"},
		{in: "redis://cache/01", wantErr: "not a number"},
		{in: "redis://cache/1/2", wantErr: "not a database number"},
		{in: "redis://cache?dial_timeout=1s", wantErr: "query"},
		{in: "redis://cache#frag", wantErr: "fragment"},
		{in: "redis://u:p%zz@cache", wantErr: "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseURL(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("parseURL = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"redis://cache", "rediss://alice:pw@cache:6380/3", "redis://[::1]:7000/0",
		"redis://u:p%zz@cache", "redis://cache?x=1", "redis:cache", "redis://cache:/", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		u, err := parseURL(in)
		if err != nil {
			// A password in the input never shows in the error.
			if i := strings.Index(in, "://"); i >= 0 {
				if at := strings.LastIndex(in, "@"); at > i {
					if c := strings.Index(in[i+3:at], ":"); c >= 0 {
						if pw := in[i+3+c+1 : at]; len(pw) >= 8 && strings.Contains(err.Error(), pw) {
							t.Errorf("error %q shows the password %q", err, pw)
						}
					}
				}
			}
			return
		}
		if u.addr == "" || u.db < 0 || (!u.hasDB && u.db != 0) {
			t.Errorf("parseURL(%q) = %+v", in, u)
		}
	})
}
