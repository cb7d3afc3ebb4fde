package caddymfa

import (
	"encoding/json"
	"fmt"
	"os"
	"path"
	"strings"

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

// directory answers who a user is and where their codes go.
type directory struct {
	users       map[string]UserEntry // by canonical name
	allowEmails []string             // canonical patterns
}

func newDirectory(entries []UserEntry, file string, allow []string) (*directory, error) {
	d := &directory{users: make(map[string]UserEntry)}
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
		name, ok := canonicalUser(u.Name)
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

// emailFor returns the address on file for a canonical user, or "" when the
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

// phoneFor returns the phone number on file (E.164) for a canonical user,
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
