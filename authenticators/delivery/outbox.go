package delivery

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/internal/cfargs"
)

// Outbox is the directory of a development outbox: instead of sending, a
// channel writes each message to a file there. The email and SMS outbox
// modules embed it, made by NewOutbox, so both are configured, provisioned
// and written the same way.
//
// File names start with the UTC time, so they sort in sending order; files
// are created 0600 in a 0700 directory and appear atomically, so a reader
// never sees half a message.
type Outbox struct {
	// Dir is the directory the messages are written to; it is created if
	// missing. Placeholders are resolved at provision. Required.
	Dir string `json:"dir,omitempty"`

	name   string // "sms outbox"
	noun   string // "text"
	dir    string
	logger *zap.Logger
}

// NewOutbox returns an outbox that calls itself name in errors and logs
// ("sms outbox"), and what it writes noun ("text").
func NewOutbox(name, noun string) Outbox {
	return Outbox{name: name, noun: noun}
}

// Provision resolves the placeholders of Dir, makes it absolute, and
// warns that nothing is sent. It writes nothing, so that caddy validate,
// which provisions every module, leaves no directory behind: the first
// message creates the directory. A path that exists and is not a
// directory is refused here.
func (o *Outbox) Provision(ctx caddy.Context) error {
	o.logger = ctx.Logger()
	if o.name == "" {
		o.name, o.noun = "outbox", "message"
	}
	dir := caddy.NewReplacer().ReplaceKnown(o.Dir, "")
	if dir == "" {
		return fmt.Errorf("%s: dir is required", o.name)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("resolving %s dir: %w", o.name, err)
	}
	switch fi, err := os.Stat(dir); {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%s dir %s is not a directory", o.name, dir)
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s dir: %w", o.name, err)
	}
	o.dir = dir
	o.logger.Warn(o.name+" is on: "+o.noun+"s are written to files, not sent", zap.String("dir", o.dir))
	return nil
}

// Path is the directory Provision resolved; empty before.
func (o *Outbox) Path() string { return o.dir }

// Write writes one file, named after the current time with the extension
// ext ("eml", "txt"), whose content write produces; write receives the
// time of the name. It writes a temporary file, syncs it and renames it
// into place, and logs the file's name at debug level with masked, the
// masked destination.
func (o *Outbox) Write(ext, masked string, write func(w io.Writer, now time.Time) error) error {
	if o.dir == "" {
		return fmt.Errorf("%s is not provisioned", o.name)
	}
	name, err := o.write(ext, write)
	if err != nil {
		return err
	}
	o.logger.Debug(o.noun+" written to outbox", zap.String("file", name), zap.String("to", masked))
	return nil
}

func (o *Outbox) write(ext string, write func(w io.Writer, now time.Time) error) (string, error) {
	var suffix [4]byte
	if _, err := rand.Read(suffix[:]); err != nil {
		return "", err
	}
	now := time.Now().UTC()
	name := filepath.Join(o.dir, now.Format("20060102T150405.000000000Z")+"-"+hex.EncodeToString(suffix[:])+"."+ext)
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return "", fmt.Errorf("creating %s dir: %w", o.name, err)
	}

	tmp, err := os.CreateTemp(o.dir, ".tmp-*."+ext) // mode 0600
	if err != nil {
		return "", fmt.Errorf("creating outbox file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := write(tmp, now); err != nil {
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

// UnmarshalCaddyfile reads "outbox <dir>", the Caddyfile form of both
// outbox modules. Syntax:
//
//	outbox <dir>
func (o *Outbox) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // consume "outbox"
	if !d.NextArg() {
		return d.ArgErr()
	}
	o.Dir = d.Val()
	return cfargs.EndLine(d, "outbox")
}

// Interface guards
var (
	_ caddy.Provisioner     = (*Outbox)(nil)
	_ caddyfile.Unmarshaler = (*Outbox)(nil)
)
