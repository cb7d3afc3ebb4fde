package sms_test

import (
	"context"
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators/sms"
)

// AcmeGateway is a provider for a made-up gateway, as a third-party plugin
// would write it. Registered as mfa.sms_providers.acme, it is configured
// with {"provider": "acme", "api_key": "..."} in JSON; implementing
// caddyfile.Unmarshaler would add "provider acme ..." to the Caddyfile.
type AcmeGateway struct {
	APIKey string `json:"api_key,omitempty"`

	status int // what the made-up gateway answers
}

func init() {
	caddy.RegisterModule(AcmeGateway{})
}

// CaddyModule returns the Caddy module information.
func (AcmeGateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  sms.ProviderNamespace + ".acme",
		New: func() caddy.Module { return new(AcmeGateway) },
	}
}

// Send makes one attempt; the delivery queue retries what is not
// permanent.
func (g *AcmeGateway) Send(ctx context.Context, t sms.Text) error {
	// A real provider sends t.To and t.Body (or t.Code) to its gateway
	// here, and never logs t.Body or t.Code.
	if g.status/100 != 2 {
		return &sms.StatusError{Provider: "acme", StatusCode: g.status, Message: "unknown recipient " + t.To}
	}
	return nil
}

func ExampleProvider() {
	text := sms.Text{To: "+12015550123", Body: "Your code is 493817", Code: "493817"}
	for _, status := range []int{http.StatusOK, http.StatusBadRequest, http.StatusServiceUnavailable} {
		err := (&AcmeGateway{status: status}).Send(context.Background(), text)
		fmt.Printf("%d: %v, permanent: %t\n", status, err, sms.IsPermanent(err))
	}
	// Output:
	// 200: <nil>, permanent: false
	// 400: acme: HTTP 400 Bad Request: unknown recipient +12015550123, permanent: true
	// 503: acme: HTTP 503 Service Unavailable: unknown recipient +12015550123, permanent: false
}

func ExampleMask() {
	fmt.Println(sms.Mask("+15551234567"))
	fmt.Println(sms.Mask("+46 70 123 45 67"))
	fmt.Println(sms.Mask("not a number"))
	// Output:
	// +1*******67
	// +4*******67
	// ***
}

func ExampleParseNumber() {
	e164, region, err := sms.ParseNumber("+1 (201) 555-0123")
	fmt.Println(e164, region, err)
	_, _, err = sms.ParseNumber("+12015550123\r\nBcc: +12015550124")
	fmt.Println(err)
	// Output:
	// +12015550123 US <nil>
	// invalid phone number
}
