package sms

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
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
	// Dir is the directory the texts are written to; it is created if
	// missing. Placeholders are resolved at provision. Required.
	Dir string `json:"dir,omitempty"`

	dir    string
	logger *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Outbox) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  ProviderNamespace + ".outbox",
		New: func() caddy.Module { return new(Outbox) },
	}
}

// Provision resolves the directory and creates it.
func (o *Outbox) Provision(ctx caddy.Context) error {
	o.logger = ctx.Logger()
	o.dir = caddy.NewReplacer().ReplaceKnown(o.Dir, "")
	if o.dir == "" {
		return errors.New("sms outbox: dir is required")
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return fmt.Errorf("resolving sms outbox dir: %w", err)
	}
	o.dir = dir
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return fmt.Errorf("creating sms outbox dir: %w", err)
	}
	o.logger.Warn("sms outbox is on: texts are written to files, not sent", zap.String("dir", o.dir))
	return nil
}

// Send writes the text to a temporary file and renames it into place.
// Failures are permanent: retrying a full disk does not help a sign-in.
func (o *Outbox) Send(_ context.Context, t Text) error {
	if o.dir == "" {
		return Permanent(errors.New("sms outbox: provider is not provisioned"))
	}
	if !isE164(t.To) {
		return Permanent(errors.New("sms outbox: destination is not in E.164 form"))
	}
	name, err := o.write(t)
	if err != nil {
		return Permanent(err)
	}
	o.logger.Debug("text written to outbox", zap.String("file", name), zap.String("to", Mask(t.To)))
	return nil
}

func (o *Outbox) write(t Text) (string, error) {
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", err
	}
	now := time.Now().UTC()
	name := filepath.Join(o.dir, now.Format("20060102T150405.000000000Z")+"-"+hex.EncodeToString(suffix[:])+".txt")

	var b strings.Builder
	b.WriteString("To: " + t.To + "\n")
	b.WriteString("Date: " + now.Format(time.RFC1123) + "\n\n")
	b.WriteString(t.Body)
	b.WriteString("\n")

	tmp, err := os.CreateTemp(o.dir, ".tmp-*.txt") // mode 0600
	if err != nil {
		return "", fmt.Errorf("creating outbox file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if _, err := tmp.WriteString(b.String()); err != nil {
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

// Interface guards
var (
	_ caddy.Provisioner = (*Outbox)(nil)
	_ Provider          = (*Outbox)(nil)
)
