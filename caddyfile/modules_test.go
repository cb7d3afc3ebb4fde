package caddyfile

import (
	"context"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/storage"
)

// Test-only guest modules: a third-party email transport configured with
// the generic "transport" form, a third-party SMS provider, and a storage
// module that is not a store.
func init() {
	caddy.RegisterModule(testTransport{})
	caddy.RegisterModule(testGateway{})
	caddy.RegisterModule(notAStore{})
}

// testTransport stands for a transport from another plugin. Syntax:
//
//	transport test_api <endpoint> {
//	    key <key>
//	}
type testTransport struct {
	Endpoint string `json:"endpoint,omitempty"`
	Key      string `json:"key,omitempty"`
}

func (testTransport) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  email.TransportNamespace + ".test_api",
		New: func() caddy.Module { return new(testTransport) },
	}
}

func (t *testTransport) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume module name
	if !d.NextArg() {
		return d.ArgErr()
	}
	t.Endpoint = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "key":
			if !d.NextArg() {
				return d.ArgErr()
			}
			t.Key = d.Val()
		default:
			return d.Errf("unrecognized test_api subdirective %q", d.Val())
		}
	}
	return nil
}

// testGateway stands for an SMS provider from another plugin. Syntax:
//
//	provider test_gateway <endpoint> {
//	    key <key>
//	}
type testGateway struct {
	Endpoint string `json:"endpoint,omitempty"`
	Key      string `json:"key,omitempty"`
}

func (testGateway) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  sms.ProviderNamespace + ".test_gateway",
		New: func() caddy.Module { return new(testGateway) },
	}
}

func (*testGateway) Send(context.Context, sms.Text) error { return nil }

func (g *testGateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume module name
	if !d.NextArg() {
		return d.ArgErr()
	}
	g.Endpoint = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "key":
			if !d.NextArg() {
				return d.ArgErr()
			}
			g.Key = d.Val()
		default:
			return d.Errf("unrecognized test_gateway subdirective %q", d.Val())
		}
	}
	return nil
}

// notAStore is a module in the storage namespace that does not implement
// storage.Store.
type notAStore struct{}

func (notAStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  storage.Namespace + ".test_not_a_store",
		New: func() caddy.Module { return new(notAStore) },
	}
}

func (*notAStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume module name
	return nil
}

var (
	_ caddyfile.Unmarshaler = (*testTransport)(nil)
	_ caddyfile.Unmarshaler = (*testGateway)(nil)
	_ sms.Provider          = (*testGateway)(nil)
	_ caddyfile.Unmarshaler = (*notAStore)(nil)
)
