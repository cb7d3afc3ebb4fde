package caddymfa

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "mfa",
		Short: "Operates caddy-mfa through a running Caddy's admin API",
		Long: `
Operates the mfa handlers of a running Caddy through its admin API
(admin.api.mfa): users and their factors, lockouts, sessions, a test
email, the delivery log. Each subcommand prints the API's JSON answer and
exits non-zero when the request fails.

With several sites using mfa, --site picks one by the host of its
base_url or by its store directory; "caddy mfa sites" lists them.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.PersistentFlags().String("address", "", "the admin API address (default: from --config, else localhost:2019)")
			cmd.PersistentFlags().StringP("config", "c", "", "a config file to read the admin address from")
			cmd.PersistentFlags().StringP("adapter", "a", "", "the adapter of --config")
			cmd.PersistentFlags().String("site", "", "the site to operate on, when several use mfa")
			cmd.AddCommand(
				mfaCommand("sites", "", "Lists the sites that use mfa", 0, func(args []string, _ *cobra.Command) (string, string, any) {
					return http.MethodGet, "/mfa/sites", nil
				}),
				mfaCommand("users", "<user>", "Shows a user's factors, lockout, sessions and remembered devices", 1, func(args []string, _ *cobra.Command) (string, string, any) {
					return http.MethodGet, "/mfa/users/" + url.PathEscape(args[0]), nil
				}),
				withFactor(mfaCommand("reset", "<user>", "Removes a user's authenticator app and recovery codes", 1, func(args []string, c *cobra.Command) (string, string, any) {
					factor, _ := c.Flags().GetString("factor")
					return http.MethodPost, "/mfa/users/" + url.PathEscape(args[0]) + "/reset", map[string]string{"factor": factor}
				})),
				mfaCommand("enroll", "<user>", "Sets up an authenticator app for a user and prints its secret, otpauth URI and recovery codes, once", 1, func(args []string, _ *cobra.Command) (string, string, any) {
					return http.MethodPost, "/mfa/users/" + url.PathEscape(args[0]) + "/enroll", nil
				}),
				mfaCommand("unlock", "<user>", "Ends a user's lockout", 1, func(args []string, _ *cobra.Command) (string, string, any) {
					return http.MethodPost, "/mfa/users/" + url.PathEscape(args[0]) + "/unlock", nil
				}),
				withRevokeFlags(mfaCommand("revoke", "<user>", "Ends a user's sessions and forgets their remembered devices, or only the one --session or --device names", 1, func(args []string, c *cobra.Command) (string, string, any) {
					var body map[string]string
					for _, name := range []string{"session", "device"} {
						if c.Flags().Changed(name) {
							v, _ := c.Flags().GetString(name)
							body = map[string]string{name: v}
						}
					}
					if body == nil {
						return http.MethodPost, "/mfa/users/" + url.PathEscape(args[0]) + "/revoke", nil
					}
					return http.MethodPost, "/mfa/users/" + url.PathEscape(args[0]) + "/revoke", body
				})),
				mfaCommand("test-email", "<address>", "Sends a test email through the configured transport and prints the result", 1, func(args []string, _ *cobra.Command) (string, string, any) {
					return http.MethodPost, "/mfa/test-email", map[string]string{"to": args[0]}
				}),
				mfaCommand("test-sms", "<+number>", "Sends a test text message through the configured provider and prints the result", 1, func(args []string, _ *cobra.Command) (string, string, any) {
					return http.MethodPost, "/mfa/test-sms", map[string]string{"to": args[0]}
				}),
				withLogFlags(mfaCommand("log", "", "Prints the delivery log, newest first", 0, func(_ []string, c *cobra.Command) (string, string, any) {
					q := url.Values{}
					for _, name := range []string{"user", "method"} {
						if v, _ := c.Flags().GetString(name); v != "" {
							q.Set(name, v)
						}
					}
					if failed, _ := c.Flags().GetBool("failed"); failed {
						q.Set("failed", "true")
					}
					if n, _ := c.Flags().GetInt("limit"); n > 0 {
						q.Set("limit", strconv.Itoa(n))
					}
					return http.MethodGet, "/mfa/log?" + q.Encode(), nil
				})),
				copyStoreCommand(),
			)
		},
	})
}

// mfaRequest builds the admin request of a subcommand: method, path and
// JSON body (nil for none).
type mfaRequest func(args []string, cmd *cobra.Command) (method, path string, body any)

func mfaCommand(name, argsUsage, short string, nargs int, build mfaRequest) *cobra.Command {
	use := name
	if argsUsage != "" {
		use += " " + argsUsage
	}
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(nargs),
		RunE: func(cmd *cobra.Command, args []string) error {
			method, path, body := build(args, cmd)
			return callAdmin(cmd, method, path, body)
		},
	}
}

func withFactor(c *cobra.Command) *cobra.Command {
	c.Flags().String("factor", "totp", "the factor to reset: totp (the app and recovery codes), phone or email (the registered one)")
	return c
}

func withRevokeFlags(c *cobra.Command) *cobra.Command {
	c.Flags().String("session", "", "end only this session: its id, as 'caddy mfa users' shows it")
	c.Flags().String("device", "", "forget only this remembered device: its id, as 'caddy mfa users' shows it")
	c.MarkFlagsMutuallyExclusive("session", "device")
	return c
}

func withLogFlags(c *cobra.Command) *cobra.Command {
	c.Flags().String("user", "", "only this user's deliveries")
	c.Flags().String("method", "", "only this method (email, sms)")
	c.Flags().Bool("failed", false, "only failed attempts")
	c.Flags().Int("limit", 0, "at most this many entries (default 100)")
	return c
}

// callAdmin sends one request to the admin API and prints the answer.
func callAdmin(cmd *cobra.Command, method, path string, body any) error {
	flags := cmd.Flags()
	address, _ := flags.GetString("address")
	configFile, _ := flags.GetString("config")
	adapter, _ := flags.GetString("adapter")
	addr, err := caddycmd.DetermineAdminAPIAddress(address, nil, configFile, adapter)
	if err != nil {
		return fmt.Errorf("finding the admin address: %w", err)
	}
	if site, _ := flags.GetString("site"); site != "" {
		sep := "?"
		if bytes.ContainsRune([]byte(path), '?') {
			sep = "&"
		}
		path += sep + "site=" + url.QueryEscape(site)
	}
	var reader io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		reader = bytes.NewReader(b)
	}
	resp, err := caddycmd.AdminAPIRequest(addr, method, path, nil, reader)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(cmd.OutOrStdout(), resp.Body)
	return err
}
