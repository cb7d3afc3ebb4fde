package sms

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/sms/twiliotest"
)

const testLink = "https://app.example.com/.mfa/link?token=Zm9vYmFyYmF6cXV4MDEyMzQ1Njc4OWFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6"

func linkMessage() authenticators.Message {
	m := testMessage()
	m.Code, m.Link = "", testLink
	return m
}

// TestDeliverLink sends a link message: the localized link text goes out
// with the link and no code, and the provider sees the link apart.
func TestDeliverLink(t *testing.T) {
	s := twiliotest.NewServer(t)
	c := &Config{
		ProviderRaw:  twilioJSON(s, nil),
		Send:         SendLink,
		LinkMessages: map[string]string{"sv": "Logga in: %s"},
	}
	provision(t, c, nil)
	if time.Duration(c.LinkTTL) != DefaultLinkTTL {
		t.Errorf("LinkTTL = %v, want %v", time.Duration(c.LinkTTL), DefaultLinkTTL)
	}
	for _, lang := range []string{"", "sv-SE"} {
		if err := c.Deliver(WithLanguage(t.Context(), lang), linkMessage()); err != nil {
			t.Fatalf("Deliver(%q) = %v", lang, err)
		}
	}
	var bodies []string
	for _, m := range s.Messages() {
		bodies = append(bodies, m.Body)
	}
	want := []string{"Tap to sign in: " + testLink, "Logga in: " + testLink}
	if fmt.Sprint(bodies) != fmt.Sprint(want) {
		t.Errorf("bodies = %q, want %q", bodies, want)
	}
}

// TestDeliverLinkRefused: a link that is not a plain absolute http(s) URL,
// or one that makes the text too long, never reaches the provider, and
// the delivery results do not reveal the token.
func TestDeliverLinkRefused(t *testing.T) {
	s := twiliotest.NewServer(t)
	c := &Config{ProviderRaw: twilioJSON(s, nil), Send: SendLink, LinkMessage: strings.Repeat("x", MaxBodyLength-100) + " %s"}
	rec := provision(t, c, nil)
	for _, link := range []string{
		"javascript:alert(1)",
		"https://app.example.com/.mfa/link?token=secret0\r\nTo=+12015550124",
		"https://app.example.com/.mfa/link?token=secret0 x",
		"https://app.example.com/.mfa/link?token=secret0" + strings.Repeat("a", 100),
	} {
		m := linkMessage()
		m.Link = link
		if err := c.Deliver(t.Context(), m); !errors.Is(err, authenticators.ErrDeliveryFailed) {
			t.Errorf("Deliver(link %q) = %v, want ErrDeliveryFailed", link, err)
		}
	}
	if n := s.Requests(); n != 0 {
		t.Errorf("the provider got %d requests, want none", n)
	}
	checkSecrets(t, "results", resultsText(rec.get()), "secret0")
}

// TestClassifyMasksLink: a provider error that echoes the link does not
// reveal its token.
func TestClassifyMasksLink(t *testing.T) {
	err := classify(errors.New("rejected body Tap to sign in: "+testLink), Text{To: testTo, Body: "Tap to sign in: " + testLink, Link: testLink})
	if strings.Contains(err.Error(), "Zm9vYmFy") {
		t.Errorf("error reveals the token: %v", err)
	}
}

func TestUnmarshalCaddyfileLink(t *testing.T) {
	input := `sms {
		provider outbox ./sms-outbox
		send link
		link_ttl 10m
		link_message "Sign in to Example: %s"
		link_message sv "Logga in: %s"
		message "Your code is %s"
	}`
	var c Config
	if err := c.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatalf("UnmarshalCaddyfile() = %v", err)
	}
	c.ProviderRaw = nil
	want := Config{
		Send:         SendLink,
		LinkTTL:      caddy.Duration(10 * time.Minute),
		LinkMessage:  "Sign in to Example: %s",
		LinkMessages: map[string]string{"sv": "Logga in: %s"},
		Message:      "Your code is %s",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("config = %+v\nwant     %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v", err)
	}
}
