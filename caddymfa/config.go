package caddymfa

import (
	"encoding/json"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/passkey"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
)

// Handler is the http.handlers.mfa module: it lets a request through only
// when it carries a valid MFA session, and serves the sign-in flow under
// PathPrefix.
type Handler struct {
	// User is a placeholder that yields the first-factor user, e.g. the
	// default "{http.auth.user.id}" set by basic_auth. Set to "" for the
	// standalone flow, which asks the visitor who they are and needs users,
	// users_file or allow_emails. In second-factor mode a placeholder that
	// is unresolved or empty for a request denies it: it never falls back
	// to the standalone flow.
	User *string `json:"user,omitempty"`

	// TrustIdentityHeaders allows User and email.address to read request
	// headers ({http.request.header.*}) from clients that are not trusted
	// proxies. Off by default: a client could otherwise claim any user.
	TrustIdentityHeaders bool `json:"trust_identity_headers,omitempty"`

	// PathPrefix is where the flow endpoints and pages live. Default: "/.mfa".
	PathPrefix string `json:"path_prefix,omitempty"`

	// BaseURL is the external URL of the site, e.g. "https://app.example.com".
	// Links and labels are built from it, never from Host or X-Forwarded-*.
	// Optional in code mode.
	BaseURL string `json:"base_url,omitempty"`

	// StorageRaw is the store backend. Default: {"backend": "badger"} in
	// Caddy's data directory + "/mfa".
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=mfa.storage inline_key=backend"`

	// SecretKey signs cookies and keys code HMACs; at least 32 bytes.
	// Placeholders such as {env.MFA_SECRET_KEY} are resolved at provision.
	// Default: a random key generated once and kept in the store.
	SecretKey string `json:"secret_key,omitempty"`

	// SessionTTL is the absolute lifetime of an MFA session. Default: 12h.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`

	// IdleTimeout ends a session unused for this long. Default: 1h.
	IdleTimeout caddy.Duration `json:"idle_timeout,omitempty"`

	// Users are the users known to the standalone flow, with their
	// addresses on file.
	Users []UserEntry `json:"users,omitempty"`

	// UsersFile is a JSON file holding an array of users in the same shape
	// as Users. It is read at provision.
	UsersFile string `json:"users_file,omitempty"`

	// AllowEmails are patterns ("*@example.com", "bob@example.org") of
	// email addresses that may sign in with an emailed code alone in the
	// standalone flow, without being listed in Users.
	AllowEmails []string `json:"allow_emails,omitempty"`

	// Lockout locks a user after this many consecutive failed
	// verifications, across all challenges and methods. Default: 10
	// failures in 15m.
	Lockout *Lockout `json:"lockout,omitempty"`

	// Email configures email one-time codes.
	Email *email.Config `json:"email,omitempty"`

	// SMS configures one-time codes by text message to the phone number
	// on file.
	SMS *sms.Config `json:"sms,omitempty"`

	// TOTP configures codes from authenticator apps, and who may enroll
	// one.
	TOTP *totp.Config `json:"totp,omitempty"`

	// Passkey configures passkeys (WebAuthn) as a factor, and
	// passwordless sign-in in standalone mode. Needs BaseURL: the relying
	// party ID and origin are its host name and origin.
	Passkey *passkey.Config `json:"passkey,omitempty"`

	// RecoveryCodes is how many single-use recovery codes a user gets when
	// adding an authenticator app, 10 to 100. Default: 10.
	RecoveryCodes int `json:"recovery_codes,omitempty"`

	// Policy says when the second factor is asked: "always" (default),
	// "never", "new_ip" (only from an IP address the user has not signed
	// in from) or "new_country" (only from a country the user has not
	// signed in from; needs GeoIPDB). Known addresses and countries are
	// kept per user: the last 20, each for 90 days. Second-factor mode
	// only.
	Policy string `json:"policy,omitempty"`

	// GeoIPDB is a MaxMind-format country database (e.g. GeoLite2-Country)
	// for policy new_country. Read at provision.
	GeoIPDB string `json:"geoip_db,omitempty"`

	// RememberDevice lets a user tick "remember this device" after a
	// successful challenge: the browser then skips the challenge for this
	// long. Off (0) by default. The device is forgotten when the user's
	// factors change, the user is locked, or signs out.
	RememberDevice caddy.Duration `json:"remember_device,omitempty"`

	// LinkCrossDevice lets a sign-in link of standalone mode be confirmed
	// in a browser other than the one that asked for it, with number
	// matching (SECURITY.md L57). Off by default in standalone mode,
	// where anyone can name a user and start a sign-in; second-factor
	// mode always allows it.
	LinkCrossDevice bool `json:"link_cross_device,omitempty"`

	// TrustedNetworks lets requests from these networks skip the
	// challenge: CIDRs such as "10.0.0.0/8", single addresses, or
	// "private_ranges". The client IP is Caddy's client_ip (which honours
	// the server's trusted_proxies). Second-factor mode only.
	TrustedNetworks []string `json:"trusted_networks,omitempty"`

	// Translations is a directory of message files ("de.txt",
	// "pt-BR.txt") that override the shipped texts of a language or add
	// a language; see the README. Read at provision. Default: the
	// shipped languages only.
	Translations string `json:"translations,omitempty"`

	// Realm names the realm this handler belongs to: handlers of one
	// realm accept each other's sessions, flows, links and remembered
	// devices on a shared store (single sign-on); handlers of different
	// realms refuse them. A name is letters, digits, '.', '_' and '-'.
	// Default: a realm of this handler alone, derived from its server's
	// listen ports, the host and path matchers of the routes leading
	// to it, and path_prefix; stable across reloads and restarts.
	Realm string `json:"realm,omitempty"`

	// CookieDomain makes the session cookie cover this domain and its
	// subdomains (e.g. "example.com" for app.example.com and
	// wiki.example.com), so one sign-in serves every site of the realm
	// under it. It must be a parent of the site's hosts. Default: none;
	// the cookie is sent to the host that set it only.
	CookieDomain string `json:"cookie_domain,omitempty"`

	// Methods are the methods whose verification this handler accepts:
	// email, sms, totp, passkey, recovery. A session of the realm made with none
	// of them is sent to the challenge of one that is (step-up). Default:
	// any session of the realm.
	Methods []string `json:"methods,omitempty"`

	// MaxAge asks for a factor again when the session's last verification
	// of an accepted method is older than this. Default: 0, no limit
	// beyond session_ttl and idle_timeout.
	MaxAge caddy.Duration `json:"max_age,omitempty"`

	// SiteName names the site in every page title, the page header, and
	// the emails and texts. Default: the host of base_url, or of the
	// request, in messages; no name on the pages.
	SiteName string `json:"site_name,omitempty"`

	// Logo is an image file (.svg, .png, .jpg, .webp or .gif, at most
	// 256 KiB) shown above the sign-in card, served from path_prefix. Read
	// at provision.
	Logo string `json:"logo,omitempty"`

	// CSS is a stylesheet file appended to the built-in one, which sets
	// its colors as CSS variables (--accent, --bg, --card, ...). Served
	// from path_prefix, so the pages' CSP still allows no other origin.
	// Read at provision.
	CSS string `json:"css,omitempty"`

	// Templates is a directory of .html files that replace blocks of the
	// built-in page ({{define "brand"}}...{{end}}) or, as page.html, the
	// whole page. Checked at provision: a file that does not parse, or a
	// page that leaves out the error message or the language switcher,
	// is refused.
	Templates string `json:"templates,omitempty"`

	handlerState
}

// UserEntry is one user with the addresses on file.
type UserEntry struct {
	// Name is the user name (standalone sign-in name, or the first-factor
	// user id). Compared after trimming, NFKC normalisation and case
	// folding.
	Name string `json:"name"`
	// Email is the user's email address on file.
	Email string `json:"email,omitempty"`
	// Phone is the user's phone number on file in E.164.
	Phone string `json:"phone,omitempty"`
	// Disabled users cannot sign in; they get the same answers as unknown
	// users.
	Disabled bool `json:"disabled,omitempty"`
}

// Lockout is the failure limit. In second-factor mode it counts per
// user. In standalone mode, where anybody can name a user, Failures and
// Window count per user and client network (IPv4 /24, IPv6 /56), and
// UserFailures and UserWindow bound the failures of a user from all
// networks together.
type Lockout struct {
	// Failures is how many consecutive failures lock the user (in
	// standalone mode: the user, from one client network), 1 to 100.
	// Default: 10.
	Failures int `json:"failures,omitempty"`
	// Window is how long failures are remembered and the lock lasts.
	// Default: 15m.
	Window caddy.Duration `json:"window,omitempty"`
	// UserFailures is, in standalone mode, how many consecutive failures
	// from all networks together lock the user everywhere, Failures to
	// 100. Default: 100.
	UserFailures int `json:"user_failures,omitempty"`
	// UserWindow is, in standalone mode, how long the user-wide failures
	// are remembered and the user-wide lock lasts. Default: 24h.
	UserWindow caddy.Duration `json:"user_window,omitempty"`
}
