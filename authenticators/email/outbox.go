package email

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

func init() {
	caddy.RegisterModule(Outbox{})
}

// DefaultOutboxFrom is the sender of the outbox transport when from is not
// configured.
const DefaultOutboxFrom = "caddy-mfa <noreply@localhost>"

// Outbox is a development transport: instead of sending, it writes each
// message to Dir as an RFC 5322 .eml file, exactly as it would go over
// SMTP. File names start with the UTC time, so they sort in sending order;
// files are created 0600 in a 0700 directory and appear atomically.
type Outbox struct {
	// Dir is the directory the messages are written to; it is created if
	// missing. Placeholders are resolved at provision. Required.
	Dir string `json:"dir,omitempty"`

	dir    string
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Outbox) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "mfa.email_transports.outbox",
		New: func() caddy.Module { return new(Outbox) },
	}
}

// Provision resolves the directory and creates it.
func (o *Outbox) Provision(ctx caddy.Context) error {
	o.logger = ctx.Logger()
	o.dir = caddy.NewReplacer().ReplaceKnown(o.Dir, "")
	if o.dir == "" {
		return errors.New("outbox: dir is required")
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return fmt.Errorf("resolving outbox dir: %w", err)
	}
	o.dir = dir
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("creating outbox dir: %w", err)
	}
	o.logger.Warn("email outbox is on: messages are written to files, not sent", zap.String("dir", o.dir))
	return nil
}

func (*Outbox) defaultFrom() string { return DefaultOutboxFrom }

func (o *Outbox) newWorker(*zap.Logger) (delivery.Worker[*outgoing], error) {
	return outboxWorker{o: o}, nil
}

type outboxWorker struct {
	o *Outbox
}

// Send writes the message to a temporary file and renames it into place.
// Failures are permanent: retrying a full disk does not help a sign-in.
func (w outboxWorker) Send(_ context.Context, out *outgoing) error {
	name, err := w.write(out)
	if err != nil {
		return delivery.Permanent(&sendError{msg: maskText(err.Error(), out.code), err: err})
	}
	w.o.logger.Debug("message written to outbox", zap.String("file", name), zap.String("to", Mask(out.to)))
	return nil
}

func (w outboxWorker) write(out *outgoing) (string, error) {
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", err
	}
	name := filepath.Join(w.o.dir,
		time.Now().UTC().Format("20060102T150405.000000000Z")+"-"+hex.EncodeToString(suffix[:])+".eml")

	tmp, err := os.CreateTemp(w.o.dir, ".tmp-*.eml") // mode 0600
	if err != nil {
		return "", fmt.Errorf("creating outbox file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := out.msg.WriteTo(tmp); err != nil {
		tmp.Close()
		return "", fmt.Errorf("writing outbox file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", fmt.Errorf("writing outbox file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("writing outbox file: %w", err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return "", fmt.Errorf("renaming outbox file: %w", err)
	}
	return name, nil
}

func (outboxWorker) Close() error { return nil }

// Interface guards
var (
	_ caddy.Provisioner = (*Outbox)(nil)
	_ transport         = (*Outbox)(nil)
)
