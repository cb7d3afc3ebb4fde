package authenticators

import (
	"strings"
	"testing"
)

func TestCheckLink(t *testing.T) {
	tests := []struct {
		link string
		ok   bool
	}{
		{"https://app.example.com/.mfa/link?token=abc", true},
		{"http://localhost:9080/.mfa/link?token=abc", true},
		{"https://app.example.com/" + strings.Repeat("a", MaxLinkLength), false},
		{"javascript:alert(1)", false},
		{"/.mfa/link?token=abc", false},
		{"https:///.mfa/link", false},
		{"https://user:pw@app.example.com/", false},
		{"https://app.example.com/a b", false},
		{"https://app.example.com/\r\nBcc: x@example.com", false},
		{"https://app.example.com/\x00", false},
		{"https://app.example.com/é", false},
		{"", false},
	}
	for _, tt := range tests {
		if err := CheckLink(tt.link); (err == nil) != tt.ok {
			t.Errorf("CheckLink(%q) = %v, want ok %v", tt.link, err, tt.ok)
		}
	}
}

func TestMessageSecret(t *testing.T) {
	tests := []struct {
		m    Message
		want string
	}{
		{Message{Code: "123456"}, "123456"},
		{Message{Link: "https://a.example/.mfa/link?token=T0k3n"}, "T0k3n"},
		{Message{Link: "https://a.example/.mfa/link?token=T0k3n&x=1"}, "T0k3n"},
		{Message{Link: "https://a.example/login"}, "https://a.example/login"},
		{Message{}, ""},
	}
	for _, tt := range tests {
		if got := tt.m.Secret(); got != tt.want {
			t.Errorf("%+v.Secret() = %q, want %q", tt.m, got, tt.want)
		}
	}
}
