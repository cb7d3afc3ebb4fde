package email

import (
	"context"
	"io"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// DefaultOutboxFrom is the sender of the outbox transport when from is not
// configured.
const DefaultOutboxFrom = "caddy-mfa <noreply@localhost>"

// Outbox is a development transport: instead of sending, it writes each
// message to Dir as an RFC 5322 .eml file, exactly as it would go over
// SMTP. File names start with the UTC time, so they sort in sending order;
// files are created 0600 in a 0700 directory and appear atomically.
// Provision warns that nothing is sent.
type Outbox struct {
	// Outbox holds Dir, the directory the messages are written to; it is
	// created if missing. Placeholders are resolved at provision.
	// Required.
	delivery.Outbox
}

// DefaultFrom returns DefaultOutboxFrom.
func (*Outbox) DefaultFrom() string { return DefaultOutboxFrom }

// CaddyModule returns the Caddy module information.
func (Outbox) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  TransportNamespace + ".outbox",
		New: func() caddy.Module { return &Outbox{delivery.NewOutbox("email outbox", "message")} },
	}
}

// Send writes the message to a temporary file and renames it into place.
// Failures are permanent: retrying a full disk does not help a sign-in.
func (o *Outbox) Send(_ context.Context, m *Message) error {
	return Permanent(o.Write("eml", Mask(m.To), func(w io.Writer, _ time.Time) error {
		_, err := m.WriteTo(w)
		return err
	}))
}

// Interface guards
var (
	_ caddy.Provisioner = (*Outbox)(nil)
	_ Transport         = (*Outbox)(nil)
	_ DefaultSender     = (*Outbox)(nil)
)
