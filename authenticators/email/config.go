package email

import (
	"encoding/json"
	"net/mail"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/delivery"
)

// Config configures the email authenticator: how mail leaves (a transport
// module), what it says (templates) and the limits of the Curity Email OTP
// seed. It is not a module itself; the mfa handler embeds it and calls
// Provision, Validate and Cleanup.
type Config struct {
	// TransportRaw is the transport that sends mail: "smtp" or "outbox"
	// (development: writes .eml files). Required.
	TransportRaw json.RawMessage `json:"transport,omitempty" caddy:"namespace=mfa.email_transports inline_key=transport"`

	// From is the sender, a single RFC 5322 address with an optional display
	// name, e.g. "Example <noreply@example.com>". Required for smtp; the
	// outbox transport defaults to "caddy-mfa <noreply@localhost>".
	From string `json:"from,omitempty"`

	// Send is what the message carries: "code" (default), a one-time code
	// to type in, or "link", a single-use link to open and confirm (the
	// Curity Email seed's hyperlink mode). Link mode needs the handler's
	// base_url, from which the links are built.
	Send string `json:"send,omitempty"`

	// LinkTTL is how long a link stays valid in link mode. Default: 10m;
	// at most 1h.
	LinkTTL caddy.Duration `json:"link_ttl,omitempty"`

	// Address, when set, is a placeholder (Curity's intermediate attribute)
	// that yields the user's address from the first factor, e.g.
	// "{http.request.header.Remote-Email}". Only valid in second-factor
	// mode. Default: the address on file.
	Address string `json:"address,omitempty"`

	// Limits: code_length (default 6), code_ttl (default and maximum 10m),
	// max_attempts (default 3), max_sends (default 3) and throttle (per_hour
	// 100, per_5m 20, per_ip_per_hour 10, per_user_per_hour 5,
	// per_destination_per_hour 5, cooldown 30s; a negative value turns a
	// cap off).
	authenticators.Limits

	// Templates overrides the subject, text and HTML bodies of code and
	// link messages; security notices keep their built-in templates.
	Templates *Templates `json:"templates,omitempty"`

	// Delivery tunes the asynchronous delivery queue.
	Delivery *delivery.Config `json:"delivery,omitempty"`

	// Registration lets users add or change their email address,
	// confirmed by a code to the new address, after passing another
	// factor. Off when absent.
	Registration *authenticators.Registration `json:"registration,omitempty"`

	transport Transport
	from      *mail.Address
	tmpl      *templates
	ch        delivery.Channel[*Message] // queue, reports, log; tests set its Logger and Backoff
}

// Templates are Go text/template (subject, text) and html/template (html)
// sources. Each receives .Code, .Link, .Site, .To (masked), .User and
// .ExpiresIn (e.g. "10 minutes"); .Code is empty in link mode and .Link in
// code mode, so one template can serve both with {{if .Link}}. In link
// mode the text and HTML bodies must show .Link. Empty fields keep the
// built-in template.
type Templates struct {
	// Subject is the subject line template. Default: "Your sign-in code for {{.Site}}".
	Subject string `json:"subject,omitempty"`
	// TextFile is a file holding the plain-text body template.
	TextFile string `json:"text_file,omitempty"`
	// HTMLFile is a file holding the HTML body template.
	HTMLFile string `json:"html_file,omitempty"`
}
