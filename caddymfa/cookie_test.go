package caddymfa

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestStripCookies(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"a=1; mfa_session=x; b=2"}, []string{"a=1; b=2"}},
		{[]string{"mfa_session=x", "mfa_flow=y"}, nil},
		{[]string{"a=1", "mfa_flow=y; c=3"}, []string{"a=1", "c=3"}},
		{[]string{"a=1; mfa_session=x; b=2; mfa_flow=y; c=3"}, []string{"a=1; b=2; c=3"}},
		{[]string{"mfa_session=x; a=1;b=2"}, []string{"a=1;b=2"}},
		{[]string{" a=1 ; mfa_session=x"}, []string{"a=1"}},
		{[]string{"mfa_flow=;;"}, nil},
		{[]string{"xmfa_session=1; a=2"}, []string{"xmfa_session=1; a=2"}},
		{[]string{"a=1"}, []string{"a=1"}},
	}
	for _, tt := range tests {
		r := &http.Request{Header: http.Header{"Cookie": append([]string(nil), tt.in...)}}
		stripCookies(r, "mfa_flow", "mfa_session")
		got := r.Header["Cookie"]
		if fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("stripCookies(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzStripCookieLine(f *testing.F) {
	f.Add("a=1; mfa_session=x; b=2")
	f.Add(";mfa_flow=;;a")
	f.Fuzz(func(t *testing.T, line string) {
		got := stripCookieLine(line, []string{"mfa_flow", "mfa_session"})
		for _, part := range strings.Split(got, ";") {
			k, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if k == "mfa_flow" || k == "mfa_session" {
				t.Fatalf("stripCookieLine(%q) = %q keeps our cookie", line, got)
			}
		}
		var want []string
		for _, part := range strings.Split(line, ";") {
			part = strings.TrimSpace(part)
			k, _, _ := strings.Cut(part, "=")
			if part != "" && k != "mfa_flow" && k != "mfa_session" {
				want = append(want, part)
			}
		}
		var kept []string
		for _, part := range strings.Split(got, ";") {
			if part = strings.TrimSpace(part); part != "" {
				kept = append(kept, part)
			}
		}
		if strings.Join(kept, "|") != strings.Join(want, "|") {
			t.Fatalf("stripCookieLine(%q) = %q, want the cookies %q", line, got, want)
		}
	})
}

func TestHostOnly(t *testing.T) {
	for in, want := range map[string]string{
		"app.test": "app.test", "app.test:8443": "app.test", "[::1]:443": "::1", "[::1]": "::1",
		"::1": "::1", "": "", "App.Test:1": "App.Test",
	} {
		if got := hostOnly(in); got != want {
			t.Errorf("hostOnly(%q) = %q, want %q", in, got, want)
		}
	}
}

// stripCookies looks for cookieMarker first: every name must contain it.
func TestCookieNamesCarryTheMarker(t *testing.T) {
	rm := newRealm("app", "example.com")
	for _, names := range [][cookieKinds]string{rm.plain, rm.secure} {
		for _, n := range names {
			if !strings.Contains(n, cookieMarker) {
				t.Errorf("cookie %q lacks %q", n, cookieMarker)
			}
		}
	}
}
