package redis

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// defaultPort is Redis' port, used when a URL names none.
const defaultPort = "6379"

// serverURL is a parsed redis:// or rediss:// URL.
type serverURL struct {
	tls      bool
	addr     string // host:port
	username string
	password string
	db       int
	hasDB    bool // the URL has a /<db> path
}

// parseURL parses redis://[user[:password]@]host[:port][/db], or
// rediss://... for TLS. The URL has no query and no fragment: every other
// setting has its own option, so nothing hides in a URL.
func parseURL(raw string) (serverURL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return serverURL{}, fmt.Errorf("parsing redis url: %w", redactURLError(err))
	}
	var su serverURL
	switch u.Scheme {
	case "redis":
	case "rediss":
		su.tls = true
	default:
		return serverURL{}, fmt.Errorf("redis url: scheme must be redis:// or rediss://, not %q", u.Scheme)
	}
	if u.Opaque != "" {
		return serverURL{}, errors.New("redis url: want redis://host:port")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return serverURL{}, errors.New("redis url: a query or fragment is not supported; use the store's options")
	}
	if u.User != nil {
		su.username = u.User.Username()
		su.password, _ = u.User.Password()
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return serverURL{}, errors.New("redis url: no host")
	}
	if strings.HasSuffix(u.Host, ":") {
		return serverURL{}, errors.New("redis url: empty port")
	}
	if port == "" {
		port = defaultPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return serverURL{}, fmt.Errorf("redis url: invalid port %q", port)
	}
	su.addr = net.JoinHostPort(host, port)
	switch p := strings.TrimPrefix(u.Path, "/"); {
	case u.Path == "" || u.Path == "/":
	case strings.Contains(p, "/"):
		return serverURL{}, fmt.Errorf("redis url: path %q is not a database number", u.Path)
	default:
		db, err := parseDB(p)
		if err != nil {
			return serverURL{}, fmt.Errorf("redis url: %w", err)
		}
		su.db, su.hasDB = db, true
	}
	return su, nil
}

// parseDB parses a database number.
func parseDB(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || strconv.Itoa(n) != s {
		return 0, fmt.Errorf("database %q is not a number from 0", s)
	}
	return n, nil
}

// redactURLError drops the URL from a url.Error, since it may hold a
// password.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
