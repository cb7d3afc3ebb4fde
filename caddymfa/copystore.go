package caddymfa

import (
	"context"
	"errors"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/spf13/cobra"

	"github.com/caddymfa/caddy-mfa/storage"
)

// copyStoreCommand is "caddy mfa copy-store": it moves a site's whole state
// (users' factors, sessions, counters, lockouts, the secret key) from one
// store to another, so a site can grow from one node on Badger to several
// on Redis, or move back, without signing anyone out or losing an
// enrollment. It works offline, on the stores themselves: Caddy holds a
// Badger directory while it runs, and a copy of a store that changes under
// it would not be a copy.
func copyStoreCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "copy-store --from <store> --to <store>",
		Short: "Copies all mfa state from one store to another (stop Caddy first)",
		Long: `
Copies every live record (enrolled factors, sessions, counters, lockouts,
remembered devices, the generated secret key) from one store to another,
with its expiry. The destination must be empty. Stop Caddy first: it holds
a Badger directory while it runs, and state that changes during the copy
would be lost.

A store is written as the mfa directive's storage line without the word
"storage", or as its JSON:

  caddy mfa copy-store --from 'badger /var/lib/caddy/mfa' \
      --to 'redis redis://10.0.0.5:6379'
  caddy mfa copy-store --from '{"backend": "badger", "dir": "/data/mfa"}' \
      --to 'badger /data/mfa-copy'

Options of a store's block go on their own lines, as in a Caddyfile
(--to $'redis redis://10.0.0.5:6379 {\n key_prefix site1\n}').
If the sites use a secret_key from the config rather than a generated
one, keep the same secret_key in the new config, so sessions stay valid.
`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, _ := cmd.Flags().GetString("from")
			to, _ := cmd.Flags().GetString("to")
			if from == "" || to == "" {
				return errors.New("copy-store needs --from and --to")
			}
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel() // cleans the stores up
			src, err := storage.Open(ctx, from)
			if err != nil {
				return fmt.Errorf("opening --from: %w", err)
			}
			dst, err := storage.Open(ctx, to)
			if err != nil {
				return fmt.Errorf("opening --to: %w", err)
			}
			n, err := storage.Copy(ctx, dst, src)
			if err != nil {
				return fmt.Errorf("copying (%d records written): %w", n, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "copied %d records\n", n)
			return nil
		},
	}
	c.Flags().String("from", "", "the store to copy from")
	c.Flags().String("to", "", "the empty store to copy into")
	return c
}
