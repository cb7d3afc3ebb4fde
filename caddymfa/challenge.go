package caddymfa

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/storage"
)

// asyncDeliveryDelay is how long a standalone send waits before it starts
// delivering: long enough for the HTTP answer to leave first.
const asyncDeliveryDelay = 20 * time.Millisecond

// Errors of the challenge operations, mapped to answers by the endpoints.
var (
	errTooManySends = errors.New("too many sends for this challenge")
	errDelivery     = errors.New("the code could not be delivered")
)

// sendRequest is everything needed to issue one code.
type sendRequest struct {
	flow   *flowState
	sender authenticators.Sender
	limits authenticators.Limits
	ip     string
	dest   string // the address on file; "" when the user has none
	site   string
	lang   string // Accept-Language, for localized text messages
	// country and perCountry: the destination's country and its cap per
	// hour, against SMS pumping; perCountry 0 is no cap.
	country    string
	perCountry int
	// wait for the first delivery attempt, so a permanent failure reaches
	// the page. Off in standalone mode, where waiting would tell known
	// users from unknown ones by timing.
	wait bool
	// linkTTL, when set, sends a link of that lifetime instead of a code.
	linkTTL time.Duration
}

// issue sends a new code for the flow's challenge. A challenge that exists
// keeps its attempt count (SECURITY.md B11): the new code replaces the
// old one and counts against max_sends. For a user without an address the
// same records are written and nothing is sent, so the answer and its
// timing do not reveal who exists.
func (h *Handler) issue(ctx context.Context, sr sendRequest) error {
	user := sr.flow.user()
	destKey := "u:" + h.keys.storeID(user)
	if sr.dest != "" {
		destKey = h.keys.storeID(sr.dest)
	}
	var extra []windowCap
	if sr.country != "" {
		extra = append(extra, windowCap{"country", "country/" + sr.sender.Method() + "/" + sr.country, sr.perCountry, time.Hour})
	}
	if err := h.checkSendCaps(ctx, sr.sender.Method(), sr.limits.Throttle, sr.ip, h.keys.storeID(user), destKey, extra...); err != nil {
		return err
	}
	var code, token string
	var err error
	ttl := time.Duration(sr.limits.CodeTTL)
	if sr.linkTTL > 0 {
		token, err = newLinkToken(h.challengeID(sr.flow.ID))
		ttl = sr.linkTTL
	} else {
		code, err = authenticators.NewCode(sr.limits.CodeLength)
	}
	if err != nil {
		return err
	}
	now := h.now()
	masked := ""
	if sr.dest != "" {
		masked = sr.sender.Mask(sr.dest)
	}
	var ch challenge
	err = h.store.Update(ctx, keyChallenge+h.challengeID(sr.flow.ID), func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		ch = challenge{}
		if found {
			old, err := decodeRecord[challenge](cur.Value)
			if err != nil {
				return nil, time.Time{}, storage.Keep, err
			}
			if old.Sends >= sr.limits.MaxSends || old.State == stateUsed {
				return nil, time.Time{}, storage.Keep, errTooManySends
			}
			ch.Attempts, ch.Sends = old.Attempts, old.Sends
		}
		ch.User = user
		ch.Method = sr.sender.Method()
		if token != "" {
			ch.LinkMAC = h.keys.linkMAC(h.challengeID(sr.flow.ID), token)
		} else {
			ch.CodeMAC = h.keys.codeMAC(sr.flow.ID, code)
		}
		ch.Sends++
		ch.Destination = masked
		ch.State = statePending
		if ch.Attempts >= sr.limits.MaxAttempts {
			ch.State = stateDead
		}
		ch.IssuedAt = now
		ch.ExpiresAt = now.Add(ttl)
		ch.KeepUntil = time.Unix(sr.flow.Issued, 0).Add(flowTTL)
		if ch.KeepUntil.Before(ch.ExpiresAt) {
			ch.KeepUntil = ch.ExpiresAt
		}
		b, err := encodeRecord(ch)
		return b, ch.KeepUntil, storage.Write, err
	})
	if errors.Is(err, errTooManySends) {
		h.metrics.throttle(scopeMaxSends)
	}
	if err != nil {
		return err
	}
	if sr.dest == "" || ch.State != statePending {
		return nil
	}
	h.metrics.sent(ch.Method)
	msg := authenticators.Message{
		ChallengeID: h.challengeID(sr.flow.ID),
		User:        user,
		To:          sr.dest,
		Code:        code,
		Link:        h.linkURL(token),
		TTL:         ttl,
		Site:        sr.site,
	}
	// A final failure, now or after the retries that outlast the wait,
	// reaches markFailed through the delivery log.
	if !sr.wait {
		// Start the delivery after this answer is out, so the work of
		// rendering and sending does not slow the answers to known users
		// alone (SECURITY.md H37).
		h.pending.Add(1)
		time.AfterFunc(asyncDeliveryDelay, func() {
			defer h.pending.Done()
			// A cancelled context queues the message without waiting for
			// the outcome, which reaches the delivery log.
			queueOnly, cancel := context.WithCancel(sms.WithLanguage(context.Background(), sr.lang))
			cancel()
			_ = sr.sender.Deliver(queueOnly, msg)
		})
		return nil
	}
	if err := sr.sender.Deliver(sms.WithLanguage(ctx, sr.lang), msg); err != nil {
		h.logger.Warn("code not delivered", zap.String("method", ch.Method), zap.String("to", masked), zap.Error(err))
		h.markFailed(ctx, msg.ChallengeID)
		return fmt.Errorf("%w: %v", errDelivery, err)
	}
	return nil
}

// challengeID names the challenge of a flow in the store and the delivery
// log. It is derived from the flow ID, so neither reveals it.
func (h *Handler) challengeID(flowID string) string {
	return h.keys.storeID("challenge\x00" + flowID)
}

// markFailed kills a challenge whose code will never arrive, so it does
// not sit accepting guesses (SECURITY.md I41).
func (h *Handler) markFailed(ctx context.Context, challengeID string) {
	err := h.store.Update(ctx, keyChallenge+challengeID, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		ch, err := decodeRecord[challenge](cur.Value)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		ch.Failed = true
		ch.State = stateDead
		b, err := encodeRecord(ch)
		return b, cur.ExpiresAt, storage.Write, err
	})
	if err != nil {
		h.logger.Error("marking challenge failed", zap.Error(err))
	}
}

// verifyOutcome is what a verification attempt came to.
type verifyOutcome struct {
	ok           bool
	attemptsLeft int
	method       string
	// recoveryLeft is how many recovery codes remain after one was used.
	recoveryLeft int
}

// verifyChallenge checks a code against the flow's challenge. The
// challenge's attempt count moves before the code is compared, in one
// atomic store operation (SECURITY.md A1, A2); a locked user's code is
// counted but never compared (A4). Wrong, expired, exhausted, unknown and
// locked all come out the same (A7). The caller has counted the attempt
// in the user's lockout (verifyFactor).
func (h *Handler) verifyChallenge(ctx context.Context, flow *flowState, method, input string, locked bool) (verifyOutcome, error) {
	user := flow.user()
	limits := h.limitsFor(method)
	code, wellFormed := authenticators.NormalizeCode(input, limits.CodeLength)
	now := h.now()
	var out verifyOutcome
	err := h.store.Update(ctx, keyChallenge+h.challengeID(flow.ID), func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		out = verifyOutcome{}
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		ch, err := decodeRecord[challenge](cur.Value)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		if ch.State != statePending {
			return nil, time.Time{}, storage.Keep, nil
		}
		ch.Attempts++
		if ch.Attempts >= limits.MaxAttempts {
			ch.State = stateDead
		}
		out.attemptsLeft = max(0, limits.MaxAttempts-ch.Attempts)
		match := !locked && wellFormed && ch.Method == method && ch.User == user &&
			now.Before(ch.ExpiresAt) && ch.Attempts <= limits.MaxAttempts &&
			hmac.Equal(ch.CodeMAC, h.keys.codeMAC(flow.ID, code))
		if match {
			ch.State = stateUsed
			out = verifyOutcome{ok: true, method: ch.Method}
		}
		b, err := encodeRecord(ch)
		return b, cur.ExpiresAt, storage.Write, err
	})
	if err != nil {
		return verifyOutcome{}, fmt.Errorf("counting challenge attempt: %w", err)
	}
	return out, nil
}

// siteName names the site in messages: base_url's host, else the
// request's host when it is a plain host name. Anything else a client
// could put in Host becomes "this site", so a stranger cannot choose the
// words of a code email sent to someone else.
func (h *Handler) siteName(r *http.Request) string {
	if h.baseURL != nil {
		return h.baseURL.Hostname()
	}
	host := requestHost(r)
	if len(host) == 0 || len(host) > 253 {
		return ""
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return ""
		}
	}
	return host
}
