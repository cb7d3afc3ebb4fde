package authenticators

import (
	"errors"
	"net/url"
	"strings"
)

// MaxLinkLength bounds the length of a link in a message, in bytes.
const MaxLinkLength = 1024

// CheckLink reports whether link may go into a message: an absolute http
// or https URL of printable ASCII (no spaces, no control characters), at
// most MaxLinkLength bytes long. The handler builds links from base_url;
// this is the senders' last check that nothing else slipped in.
func CheckLink(link string) error {
	if len(link) > MaxLinkLength {
		return errors.New("link is too long")
	}
	for i := 0; i < len(link); i++ {
		if c := link[i]; c <= ' ' || c >= 0x7f {
			return errors.New("link has spaces, control characters or non-ASCII characters")
		}
	}
	u, err := url.Parse(link)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return errors.New("link is not an absolute http(s) URL")
	}
	return nil
}

// Secret returns what of m must never be logged: the code, or the token
// of the link (its token query parameter, or the whole link when it has
// none), so that error texts and transcripts can be masked.
func (m Message) Secret() string {
	if m.Code != "" {
		return m.Code
	}
	if m.Link == "" {
		return ""
	}
	if i := strings.LastIndex(m.Link, "token="); i >= 0 {
		tok := m.Link[i+len("token="):]
		if j := strings.IndexAny(tok, "&#"); j >= 0 {
			tok = tok[:j]
		}
		if tok != "" {
			return tok
		}
	}
	return m.Link
}
