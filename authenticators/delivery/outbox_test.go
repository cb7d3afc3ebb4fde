package delivery

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestOutboxWrite(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	dir := filepath.Join(t.TempDir(), "box")
	o := NewOutbox("sms outbox", "text")
	o.Dir = dir
	if err := o.Write("txt", "+1*******23", nil); err == nil || err.Error() != "sms outbox is not provisioned" {
		t.Fatalf("Write() before Provision = %v", err)
	}
	if err := o.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	o.logger = zap.New(core)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Provision wrote the outbox dir (caddy validate would leave it behind): %v", err)
	}
	var stamp time.Time
	err := o.Write("txt", "+1*******23", func(w io.Writer, now time.Time) error {
		stamp = now
		_, err := io.WriteString(w, "hello")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("outbox dir: %v, %v; want mode 0700", fi, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("outbox holds %v, want one file", entries)
	}
	name := entries[0].Name()
	if !strings.HasPrefix(name, stamp.Format("20060102T150405.000000000Z")+"-") || !strings.HasSuffix(name, ".txt") {
		t.Errorf("file name %q does not start with the time %v", name, stamp)
	}
	path := filepath.Join(dir, name)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
	if b, _ := os.ReadFile(path); string(b) != "hello" {
		t.Errorf("file holds %q", b)
	}
	all := logs.All()
	if len(all) != 1 || all[0].Message != "text written to outbox" || all[0].ContextMap()["to"] != "+1*******23" || all[0].ContextMap()["file"] != path {
		t.Errorf("log = %v", all)
	}
}

func TestOutboxProvisionErrors(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	o := NewOutbox("email outbox", "message")
	o.Dir = "{env.MFA_TEST_OUTBOX_UNSET}"
	if err := o.Provision(ctx); err == nil || err.Error() != "email outbox: dir is required" {
		t.Errorf("Provision() with an empty dir = %v", err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	o.Dir = filepath.Join(file, "box")
	if err := o.Provision(ctx); err == nil || !strings.HasPrefix(err.Error(), "email outbox dir: ") {
		t.Errorf("Provision() under a file = %v", err)
	}
	o.Dir = file
	if err := o.Provision(ctx); err == nil || !strings.HasSuffix(err.Error(), " is not a directory") {
		t.Errorf("Provision() on a file = %v", err)
	}
}

func TestOutboxUnmarshalCaddyfile(t *testing.T) {
	tests := []struct {
		input, want, wantErr string
	}{
		{input: "outbox ./mailbox", want: "./mailbox"},
		{input: "outbox", wantErr: "wrong argument count"},
		{input: "outbox a b", wantErr: "wrong argument count"},
		{input: "outbox a {\n mode 0600\n}", wantErr: "outbox takes no block"},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			var o Outbox
			err := o.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("UnmarshalCaddyfile() = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || o.Dir != tt.want {
				t.Fatalf("UnmarshalCaddyfile() = %v, dir %q", err, o.Dir)
			}
		})
	}
}
