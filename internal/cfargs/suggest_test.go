package cfargs

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 3},
		{"", "abc", 3},
		{"code_ttl", "code_ttl", 0},
		{"code_tll", "code_ttl", 1}, // swap
		{"cod_ttl", "code_ttl", 1},
		{"codes_ttl", "code_ttl", 1},
		{"kitten", "sitting", 3},
		{"héllo", "hello", 1},
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	known := []string{"session_ttl", "idle_timeout", "path_prefix", "send", "policy", "users", "user", "email", "sms", "totp"}
	for _, tc := range []struct {
		name, want string
	}{
		{"sesion_ttl", "session_ttl"},
		{"idle_timout", "idle_timeout"},
		{"path-prefix", "path_prefix"},
		{"polcy", "policy"},
		{"emial", "email"},
		{"userz", "users"},
		{"sender", ""},    // a word of its own, not a typo of send
		{"sm", ""},        // too short to guess
		{"bogus", ""},     // nothing near
		{"session", ""},   // too far
		{"policy", ""},    // known names suggest nothing
		{"totp_ttl", ""},  // far from everything
		{"mail", "email"}, // one letter missing
		{"phone", ""},     // not a typo of anything
		{"timeout", ""},   // 5 edits from idle_timeout
		{"storage", ""},   // not in the list
		{"session_tl", "session_ttl"},
		{"sesion_tl", "session_ttl"}, // 2 edits in 9 runes
		{"sendr", "send"},            // 1 edit in 5 runes
		{"snder", ""},                // 2 edits in 5 runes
	} {
		if got := Suggest(tc.name, known); got != tc.want {
			t.Errorf("Suggest(%q) = %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestUnrecognized(t *testing.T) {
	for _, tc := range []struct {
		input, want string
	}{
		{"polcy always", `unrecognized mfa subdirective "polcy"; did you mean "policy"?, at Testfile:1`},
		{"bogus 1", `unrecognized mfa subdirective "bogus", at Testfile:1`},
	} {
		d := caddyfile.NewTestDispenser(tc.input)
		d.Next()
		err := Unrecognized(d, "mfa", "policy", "users")
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: got %v, want %s", tc.input, err, tc.want)
		}
	}
}
