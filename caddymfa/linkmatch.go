package caddymfa

import (
	"crypto/hmac"
	"crypto/rand"
	"io"
	"math/big"
	"net/http"
	"time"
)

// Cross-device links (SECURITY.md L57). A link confirmed in a browser
// other than the one that asked shows where and when the sign-in began,
// and asks the user to pick, out of three, the two-digit number the
// waiting page shows: a stranger who started a sign-in in her name cannot
// have her confirm it by a tap, since she does not see his page. A wrong
// pick kills the link and counts as a failure. The browser that asked
// needs no number.

// linkOrigin is where and when a link sign-in began, kept with its
// challenge for the confirm page of another device.
type linkOrigin struct {
	// Browser and System are named from the User-Agent header
	// (describeUserAgent); "" when not recognised.
	Browser string `json:"browser,omitempty"`
	System  string `json:"system,omitempty"`
	// Country is the ISO code of the client address, with geoip_db.
	Country string    `json:"country,omitempty"`
	Time    time.Time `json:"time"`
}

// requestOrigin describes the request that asks for a link.
func (h *Handler) requestOrigin(r *http.Request) *linkOrigin {
	browser, system := describeUserAgent(r.UserAgent())
	return &linkOrigin{Browser: browser, System: system, Country: h.policy.country(clientIP(r)), Time: h.now().UTC()}
}

// matchRand is where the numbers come from; golden tests make it
// repeatable.
var matchRand io.Reader = rand.Reader

// newMatchNumber draws the two-digit number of a link sign-in.
func newMatchNumber() (int, error) {
	n, err := rand.Int(matchRand, big.NewInt(90))
	if err != nil {
		return 0, err
	}
	return 10 + int(n.Int64()), nil
}

// matchChoices returns the three numbers the confirm page offers: the
// right one and two other two-digit numbers, in random order.
func matchChoices(right int) ([]int, error) {
	choices := []int{right}
	for len(choices) < 3 {
		n, err := newMatchNumber()
		if err != nil {
			return nil, err
		}
		dup := false
		for _, c := range choices {
			dup = dup || c == n
		}
		if !dup {
			choices = append(choices, n)
		}
	}
	i, err := rand.Int(matchRand, big.NewInt(3))
	if err != nil {
		return nil, err
	}
	choices[0], choices[i.Int64()] = choices[i.Int64()], choices[0]
	return choices, nil
}

// crossDeviceView fills the confirm page of a link opened in another
// browser: where and when the sign-in began, and the numbers to pick
// from. It reads the challenge the token names, and adds nothing for a
// token that does not match it, so the page tells nothing to someone
// without the link; confirming such a token fails and counts like any
// wrong one.
func (h *Handler) crossDeviceView(r *http.Request, token string, v *view) error {
	cid, _ := linkChallenge(token)
	ch, err := h.challenges.load(r.Context(), cid)
	if err != nil {
		return err
	}
	if ch == nil || ch.LinkMAC == nil || ch.State != statePending || ch.Match == 0 || !hmac.Equal(ch.LinkMAC, h.keys.linkMAC(cid, token)) {
		return nil
	}
	choices, err := matchChoices(ch.Match)
	if err != nil {
		return err
	}
	v.Numbers, v.Origin = choices, ch.From
	return nil
}
