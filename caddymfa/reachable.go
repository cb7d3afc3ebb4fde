package caddymfa

import (
	"fmt"
	"sort"
)

// checkReachable refuses a listed user who could never be sent a code
// and could never have an authenticator app: no email and no phone on
// file, no email address from the first factor (email address), and no
// totp block. With a totp block an app can always be set up for them:
// by an administrator (caddy mfa enroll, any enroll policy), or by the
// user at their first sign-in (enroll first_login). Disabled users and
// policy never, which asks no second factor, are left alone. Users come
// from users and users_file alike; the error names the user.
func (h *Handler) checkReachable() error {
	if h.TOTP != nil || h.Policy == policyNever || (h.Email != nil && h.Email.Address != "") {
		return nil
	}
	var names []string
	for name, u := range h.dir.users {
		if !u.Disabled && u.Email == "" && u.Phone == "" {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	sort.Strings(names)
	return fmt.Errorf("%s: user %q has no email or phone to send a code to, and no authenticator app can be set up without a totp block: add an address, a totp block, or mark the user disabled", h.userSource(names[0]), names[0])
}

// userSource names where the user (in the directory's form) came from: "users", or
// "users_file <file>".
func (h *Handler) userSource(name string) string {
	for _, u := range h.Users {
		if c, _ := h.dir.userName(u.Name); c == name {
			return "users"
		}
	}
	return "users_file " + h.UsersFile
}
