package caddymfa

import (
	"net/url"
	"strings"
)

// maxReturnURL bounds the return URL kept in the flow cookie.
const maxReturnURL = 2048

// safeReturnPath accepts only a same-origin relative path ("/app?x=1") and
// returns it; anything that a browser could resolve to another origin is
// refused (SECURITY.md F32). Paths under the handler's own prefix are
// refused too, so a return can never loop into the flow.
func safeReturnPath(raw, prefix string) (string, bool) {
	if raw == "" || len(raw) > maxReturnURL {
		return "", false
	}
	if !strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "//") {
		return "", false
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		// Browsers treat backslashes as slashes and drop tabs and
		// newlines, so "/\evil.com" and "/\t/evil.com" mean "//evil.com".
		if c == '\\' || c < 0x20 || c == 0x7f || c >= 0x80 {
			return "", false
		}
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return "", false
	}
	// An encoded slash or backslash at the start ("/%2F%2Fevil.com") is
	// decoded by some servers and clients into "//evil.com".
	decoded, err := url.PathUnescape(u.EscapedPath())
	if err != nil || strings.HasPrefix(decoded, "//") || strings.ContainsRune(decoded, '\\') {
		return "", false
	}
	if decoded == prefix || strings.HasPrefix(decoded, prefix+"/") {
		return "", false
	}
	return raw, true
}
