package sms

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

func init() {
	caddy.RegisterModule(Outbox{})
}

// Outbox is a development provider: instead of sending, it writes each
// text to Dir as a .txt file with a To line, a Date line, a blank line and
// the body. File names are the UTC time and a random suffix, so they sort
// in sending order; files are created 0600 in a 0700 directory and appear
// atomically. Nothing is sent, and Provision warns about it.
type Outbox struct {
	// Outbox holds Dir, the directory the texts are written to; it is
	// created if missing. Placeholders are resolved at provision.
	// Required.
	delivery.Outbox
}

// Send writes the text to a temporary file and renames it into place.
// Failures are permanent: retrying a full disk does not help a sign-in.
func (o *Outbox) Send(_ context.Context, t Text) error {
	if o.Path() == "" {
		return Permanent(errors.New("sms outbox: provider is not provisioned"))
	}
	if !isE164(t.To) {
		return Permanent(errors.New("sms outbox: destination is not in E.164 form"))
	}
	return Permanent(o.Write("txt", Mask(t.To), func(w io.Writer, now time.Time) error {
		_, err := io.WriteString(w, "To: "+t.To+"\nDate: "+now.Format(time.RFC1123)+"\n\n"+t.Body+"\n")
		return err
	}))
}

// CaddyModule returns the Caddy module information.
func (Outbox) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  ProviderNamespace + ".outbox",
		New: func() caddy.Module { return &Outbox{delivery.NewOutbox("sms outbox", "text")} },
	}
}

// Interface guards
var (
	_ caddy.Provisioner = (*Outbox)(nil)
	_ Provider          = (*Outbox)(nil)
)
