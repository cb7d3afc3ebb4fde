package caddymfa

import (
	"crypto/hmac"
	"time"

	"github.com/caddymfa/caddy-mfa/authenticators"
)

// repeatWindow is how long after a code or link signed a flow in the
// same code or link, sent again from the same flow, answers as the
// success did: a double click, or a client that retries a request whose
// answer it lost (SECURITY.md K53).
const repeatWindow = time.Minute

// repeatedCode reports whether input repeats the code that signed the
// slot's challenge in, within repeatWindow: the same user, method and
// code, the challenge used. Such a repeat counts in no lockout and no
// challenge, and makes no second session; anything else is an attempt
// like any other, so a guess at a used challenge still counts.
func (c *challenges) repeatedCode(ch *challenge, s challengeSlot, user, method, input string, limits authenticators.Limits) bool {
	if ch == nil || ch.State != stateUsed || ch.CodeMAC == nil || ch.User != user || ch.Method != method || !c.withinRepeat(ch) {
		return false
	}
	code, ok := authenticators.NormalizeCode(input, limits.CodeLength)
	return ok && hmac.Equal(ch.CodeMAC, c.keys.codeMAC(s.binding, code))
}

// repeatedLink reports whether token repeats the link that was just
// confirmed for the challenge cid (used, or verified for the browser that
// asked to pick up), within repeatWindow.
func (c *challenges) repeatedLink(ch *challenge, cid, token string) bool {
	if ch == nil || (ch.State != stateUsed && ch.State != stateVerified) || ch.LinkMAC == nil || !c.withinRepeat(ch) {
		return false
	}
	return hmac.Equal(ch.LinkMAC, c.keys.linkMAC(cid, token))
}

func (c *challenges) withinRepeat(ch *challenge) bool {
	return !ch.UsedAt.IsZero() && c.now().Before(ch.UsedAt.Add(repeatWindow))
}
