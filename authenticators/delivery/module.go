package delivery

import (
	"fmt"

	"github.com/caddyserver/caddy/v2"
)

// LoadModule loads the guest module of a channel held in the named field
// of cfg (a json.RawMessage with a caddy namespace tag), and checks that
// it is what the channel sends through, I: an email transport, an SMS
// provider. method and what name them in errors ("sms", "sms provider").
func LoadModule[I any](ctx caddy.Context, cfg any, field, method, what string) (I, error) {
	var zero I
	mod, err := ctx.LoadModule(cfg, field)
	if err != nil {
		return zero, fmt.Errorf("loading %s: %w", what, err)
	}
	m, ok := mod.(I)
	if !ok {
		return zero, fmt.Errorf("%s: module %T is not an %s", method, mod, what)
	}
	return m, nil
}
