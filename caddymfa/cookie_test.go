package caddymfa

import (
	"net/http"
	"testing"
)

func TestStripCookies(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
	}{
		{[]string{"a=1; mfa_session=x; b=2"}, []string{"a=1; b=2"}},
		{[]string{"mfa_session=x", "mfa_flow=y"}, nil},
		{[]string{"a=1", "mfa_flow=y; c=3"}, []string{"a=1; c=3"}},
		{[]string{"xmfa_session=1; a=2"}, []string{"xmfa_session=1; a=2"}},
		{[]string{"a=1"}, []string{"a=1"}},
	}
	for _, tt := range tests {
		r := &http.Request{Header: http.Header{"Cookie": append([]string(nil), tt.in...)}}
		stripCookies(r, "mfa_flow", "mfa_session")
		got := r.Header["Cookie"]
		if len(got) != len(tt.want) || (len(got) > 0 && got[0] != tt.want[0]) {
			t.Errorf("stripCookies(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
