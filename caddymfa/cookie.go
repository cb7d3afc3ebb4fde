package caddymfa

import (
	"crypto/hmac"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Cookie name prefixes. Over HTTPS the cookies take the __Host- prefix,
// which makes the browser insist on Secure, Path=/ and no Domain; a
// session cookie with cookie_domain takes __Secure- instead. The names
// themselves are per realm (realm.go).
const (
	hostPrefix   = "__Host-"
	securePrefix = "__Secure-"
	// cookieMarker is in the name of every cookie of ours, so one scan
	// tells whether a header holds any.
	cookieMarker = "mfa_"
)

// maxCookieValue bounds what decodeSigned looks at.
const maxCookieValue = 4096

// signedTagLen is the length of the tag of a signed value, in bytes.
const signedTagLen = 18

// signedTagText is the length of the tag's base64url text.
const signedTagText = (signedTagLen*8 + 5) / 6

// signScratch is the size of the stack buffers signValue and
// decodeSigned work in; longer values (none a sign-in makes) take the
// heap.
const signScratch = 512

// signValue returns "payload.tag", base64url, where tag is an HMAC of the
// payload under purpose, with the key of macs. Cookies carry no state
// the server must trust without this tag. The value is put together in a
// stack buffer: the one allocation is the string.
func signValue[P ~string | ~[]byte](macs *macPool, purpose string, payload P) string {
	encLen := base64.RawURLEncoding.EncodedLen(len(payload))
	var scratch [signScratch]byte
	b := scratch[:0]
	if n := encLen + 1 + signedTagText; n > len(scratch) {
		b = make([]byte, 0, n)
	}
	b = base64.RawURLEncoding.AppendEncode(b, []byte(payload))
	m := macs.macOf(b, purpose)
	b = append(b, '.')
	b = base64.RawURLEncoding.AppendEncode(b, m.sum[:signedTagLen])
	macs.put(m)
	return string(b)
}

// decodeSigned checks a value made by signValue and returns its payload. A
// modified, truncated or foreign value is reported as absent.
func decodeSigned(macs *macPool, purpose, value string) (string, bool) {
	if len(value) > maxCookieValue {
		return "", false
	}
	enc, tag, ok := strings.Cut(value, ".")
	var tagText [signedTagText]byte
	if !ok || len(tag) != len(tagText) {
		return "", false
	}
	copy(tagText[:], tag)
	var got [signedTagLen]byte
	if n, err := base64.RawURLEncoding.Decode(got[:], tagText[:]); err != nil || n != signedTagLen {
		return "", false
	}
	m := macs.mac([]string{purpose, enc})
	valid := hmac.Equal(got[:], m.sum[:signedTagLen])
	macs.put(m)
	if !valid {
		return "", false
	}
	return decodeBase64(enc)
}

// decodeBase64 decodes unpadded base64url text. Short text is decoded
// through stack buffers, so the one allocation is the result, where
// DecodeString makes a slice and string(slice) a copy of it.
func decodeBase64(enc string) (string, bool) {
	if len(enc) > signScratch {
		b, err := base64.RawURLEncoding.DecodeString(enc)
		return string(b), err == nil
	}
	var src [signScratch]byte
	var dst [signScratch * 3 / 4]byte
	copy(src[:], enc)
	n, err := base64.RawURLEncoding.Decode(dst[:], src[:len(enc)])
	if err != nil {
		return "", false
	}
	return string(dst[:n]), true
}

// isHTTPS reports whether the client reached Caddy over TLS. Cookie
// attributes depend on it; X-Forwarded-Proto is deliberately ignored.
func isHTTPS(r *http.Request) bool { return r.TLS != nil }

// newCookie builds a cookie with the attributes of SECURITY.md E26.
func newCookie(r *http.Request, name, value string, expires time.Time) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     "/",
		HttpOnly: true,
		Secure:   isHTTPS(r),
		SameSite: http.SameSiteLaxMode,
	}
	if !expires.IsZero() {
		c.Expires = expires
	}
	return c
}

// readCookie returns the value of the named cookie without parsing every
// cookie of the request (this runs on each protected request).
func readCookie(r *http.Request, name string) string {
	for _, line := range r.Header["Cookie"] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			if k, v, ok := strings.Cut(part, "="); ok && k == name {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}

// stripCookies removes our cookies from the request so that neither the
// flow cookie nor the session cookie reaches the upstream. It runs on
// every protected request: when our cookies stand at the start or the end
// of the header, what is left is a substring and nothing is allocated.
func stripCookies(r *http.Request, names ...string) {
	lines := r.Header["Cookie"]
	found := false
	for _, line := range lines {
		// One scan for what all our names share, rather than one per name;
		// stripCookieLine then compares whole names.
		if strings.Contains(line, cookieMarker) {
			found = true
			break
		}
	}
	if !found {
		return
	}
	kept := lines[:0]
	for _, line := range lines {
		if line = stripCookieLine(line, names); line != "" {
			kept = append(kept, line)
		}
	}
	if len(kept) == 0 {
		r.Header.Del("Cookie")
		return
	}
	r.Header["Cookie"] = kept
}

// stripCookieLine removes the named cookies from one Cookie header line.
// When the cookies it keeps stand next to each other, the result is a
// substring of line; only a cookie dropped between two kept ones costs an
// allocation.
func stripCookieLine(line string, names []string) string {
	first, last := -1, -1 // the first and last kept cookie
	gap := false          // a dropped cookie lies between kept ones
	dropped := false
	for pos := 0; pos <= len(line); {
		segEnd := strings.IndexByte(line[pos:], ';')
		if segEnd < 0 {
			segEnd = len(line)
		} else {
			segEnd += pos
		}
		seg := line[pos:segEnd]
		part := strings.TrimSpace(seg)
		if part != "" {
			k, _, _ := strings.Cut(part, "=")
			if slices.Contains(names, k) {
				dropped = true
			} else {
				if first < 0 {
					first = pos + strings.Index(seg, part)
				} else if dropped {
					gap = true
				}
				last = pos + strings.Index(seg, part) + len(part)
				dropped = false
			}
		}
		pos = segEnd + 1
	}
	if first < 0 {
		return ""
	}
	if !gap {
		return line[first:last]
	}
	var b strings.Builder
	b.Grow(last - first)
	for _, part := range strings.Split(line[first:last], ";") {
		part = strings.TrimSpace(part)
		k, _, _ := strings.Cut(part, "=")
		if part == "" || slices.Contains(names, k) {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(part)
	}
	return b.String()
}
