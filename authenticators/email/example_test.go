package email_test

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/email"
)

// AcmeMail is a transport for a made-up mail API, as a third-party plugin
// would write it. Registered as mfa.email_transports.acme_mail, it is
// configured with {"transport": "acme_mail", "api_key": "..."} in JSON,
// and, as it implements caddyfile.Unmarshaler, with
// "transport acme_mail <api_key>" in the email block of a Caddyfile.
type AcmeMail struct {
	APIKey string `json:"api_key,omitempty"`
}

// acmeSent stands for the made-up API: what it was asked to send.
var acmeSent = struct {
	sync.Mutex
	messages []*email.Message
}{}

func init() {
	caddy.RegisterModule(AcmeMail{})
}

// CaddyModule returns the Caddy module information.
func (AcmeMail) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  email.TransportNamespace + ".acme_mail",
		New: func() caddy.Module { return new(AcmeMail) },
	}
}

// UnmarshalCaddyfile reads "acme_mail <api_key>".
func (a *AcmeMail) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume the module name
	if !d.Args(&a.APIKey) {
		return d.ArgErr()
	}
	return nil
}

// Send makes one attempt; the delivery queue retries what is not
// permanent. A real transport posts m.From, m.To, m.Subject, m.Text and
// m.HTML (or the whole message, from m.WriteTo) to its API here, and never
// logs m.Code, m.Link or the bodies.
func (a *AcmeMail) Send(ctx context.Context, m *email.Message) error {
	if a.APIKey == "" {
		return email.Permanent(fmt.Errorf("acme_mail: no API key"))
	}
	acmeSent.Lock()
	defer acmeSent.Unlock()
	acmeSent.messages = append(acmeSent.messages, m)
	return nil
}

func ExampleTransport() {
	// The email block of a Caddyfile names the transport; its tokens go to
	// AcmeMail.UnmarshalCaddyfile.
	var cfg email.Config
	err := cfg.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`email {
		transport acme_mail k-123
		from "Example <noreply@example.com>"
	}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", cfg.TransportRaw)

	// The mfa handler provisions the config and delivers codes through it.
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	if err := cfg.Provision(ctx, nil); err != nil {
		fmt.Println(err)
		return
	}
	defer cfg.Cleanup()
	err = cfg.Deliver(context.Background(), authenticators.Message{
		User: "alice", To: "alice@example.com", Code: "493817", Site: "app.example.com",
	})
	fmt.Println("delivered:", err)

	acmeSent.Lock()
	defer acmeSent.Unlock()
	m := acmeSent.messages[0]
	var raw strings.Builder
	_, _ = m.WriteTo(&raw)
	fmt.Println(m.From, "->", m.To)
	fmt.Println(m.Subject)
	fmt.Println("code in text and HTML:", strings.Contains(m.Text, m.Code), strings.Contains(m.HTML, m.Code))
	fmt.Println("RFC 5322:", strings.Contains(raw.String(), "\r\nSubject: Your sign-in code for app.example.com\r\n"))
	// Output:
	// {"api_key":"k-123","transport":"acme_mail"}
	// delivered: <nil>
	// noreply@example.com -> alice@example.com
	// Your sign-in code for app.example.com
	// code in text and HTML: true true
	// RFC 5322: true
}
