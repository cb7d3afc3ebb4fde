package caddymfa

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/caddymfa/caddy-mfa/authenticators/email"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
)

// maxUserName bounds user names accepted from requests.
const maxUserName = 256

// canonicalUser is the key of every per-user record: trimmed, NFKC
// normalised (fullwidth and compatibility forms fold to their plain
// letters) and case folded, so "Alice", " alice" and "ａｌｉｃｅ" share one
// lockout (SECURITY.md A6). Control characters make the name invalid.
func canonicalUser(name string) (string, bool) {
	if len(name) > maxUserName*4 {
		return "", false
	}
	if plainASCIIName(name) {
		return name, true // already canonical: the common case, no allocation
	}
	s := cases.Fold().String(norm.NFKC.String(strings.TrimSpace(name)))
	s = norm.NFKC.String(s)
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxUserName {
		return "", false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '/' {
			return "", false
		}
	}
	return s, true
}

// exactUser checks a first-factor identity and returns it exactly as the
// first factor gave it: in second-factor mode "Alice", "alice" and
// "ａｌｉｃｅ" are three users, as they are three basic_auth accounts, and
// never share a session, factors, an address or a placeholder value
// (SECURITY.md K51). Only the lockout and the send caps count them
// together, by their canonical form (lockName). A name that is empty,
// spaces only, too long, or holds a control character or '/' (the store
// keys' separator) is invalid.
func exactUser(name string) (string, bool) {
	if plainASCIIName(name) {
		return name, true
	}
	if len(name) > maxUserName || strings.TrimSpace(name) == "" || !utf8.ValidString(name) {
		return "", false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '/' {
			return "", false
		}
	}
	return name, true
}

// lockName is the name a user's failures and sends are counted under:
// the canonical form, so that "Alice", " alice" and "ａｌｉｃｅ" share one
// lockout and one send cap (SECURITY.md A6) while remaining separate
// users (K51). Canonical names map to themselves.
func lockName(user string) string {
	if c, ok := canonicalUser(user); ok {
		return c
	}
	return user
}

// directory answers who a user is and where their codes go.
type directory struct {
	users       map[string]UserEntry // by name: exact in second-factor mode, canonical in standalone mode
	allowEmails []string             // canonical patterns
	// exact is second-factor mode: names are looked up as the first
	// factor gives them (SECURITY.md K51).
	exact bool
}

// userName is the directory's form of a name: exactly as given in
// second-factor mode, canonical in standalone mode, where a visitor types
// it (SECURITY.md K51, A6).
func (d *directory) userName(name string) (string, bool) {
	if d.exact {
		return exactUser(name)
	}
	return canonicalUser(name)
}

// newDirectory builds the directory of the listed users; exact says
// second-factor mode (see userName).
func newDirectory(entries []UserEntry, file string, allow []string, exact bool) (*directory, error) {
	d := &directory{users: make(map[string]UserEntry), exact: exact}
	all := append([]UserEntry(nil), entries...)
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("reading users_file: %w", err)
		}
		var fromFile []UserEntry
		if err := json.Unmarshal(data, &fromFile); err != nil {
			return nil, fmt.Errorf("parsing users_file %s: %w (want a JSON array of {\"name\", \"email\", \"phone\", \"disabled\"})", file, err)
		}
		all = append(all, fromFile...)
	}
	for i, u := range all {
		// Errors name where the user came from: users, or users_file.
		src, n := "users", i+1
		if i >= len(entries) {
			src, n = "users_file "+file, i-len(entries)+1
		}
		name, ok := d.userName(u.Name)
		if !ok {
			return nil, fmt.Errorf("%s: user %d: invalid name %q", src, n, u.Name)
		}
		if _, dup := d.users[name]; dup {
			return nil, fmt.Errorf("%s: user %q is listed twice", src, u.Name)
		}
		if u.Email != "" {
			addr, err := email.ParseAddress(u.Email)
			if err != nil {
				return nil, fmt.Errorf("%s: user %q: email: %w", src, u.Name, err)
			}
			u.Email = addr
		}
		if u.Phone != "" {
			number, _, err := sms.ParseNumber(u.Phone)
			if err != nil {
				return nil, fmt.Errorf("%s: user %q: phone: %w", src, u.Name, err)
			}
			u.Phone = number
		}
		u.Name = name
		d.users[name] = u
	}
	for _, p := range allow {
		cp, ok := canonicalUser(p)
		if !ok || !strings.Contains(cp, "@") {
			return nil, fmt.Errorf("allow_emails: invalid pattern %q (want e.g. *@example.com)", p)
		}
		if _, err := path.Match(cp, "x@example.com"); err != nil {
			return nil, fmt.Errorf("allow_emails: invalid pattern %q: %w", p, err)
		}
		d.allowEmails = append(d.allowEmails, cp)
	}
	return d, nil
}

// empty reports whether the directory knows nobody, in which case the
// standalone flow is off.
func (d *directory) empty() bool { return len(d.users) == 0 && len(d.allowEmails) == 0 }

// emailFor returns the address on file for a user (in the directory's
// form, userName), or "" when the
// user is unknown, disabled or has no address.
func (d *directory) emailFor(user string) string {
	if u, ok := d.users[user]; ok {
		if u.Disabled {
			return ""
		}
		return u.Email
	}
	if !strings.Contains(user, "@") {
		return ""
	}
	for _, p := range d.allowEmails {
		if ok, _ := path.Match(p, user); ok {
			if addr, err := email.ParseAddress(user); err == nil {
				return addr
			}
		}
	}
	return ""
}

// disabled reports whether a user is listed as disabled.
func (d *directory) disabled(user string) bool {
	u, ok := d.users[user]
	return ok && u.Disabled
}

// phoneFor returns the phone number on file (E.164) for a user,
// or "" when the user is unknown, disabled or has no number.
func (d *directory) phoneFor(user string) string {
	if u, ok := d.users[user]; ok && !u.Disabled {
		return u.Phone
	}
	return ""
}

// plainASCIIName reports whether name is made only of characters that
// canonicalUser leaves unchanged.
func plainASCIIName(name string) bool {
	if name == "" || len(name) > maxUserName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-' || c == '@' || c == '+') {
			return false
		}
	}
	return true
}
