package caddymfa

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/storage"
)

// Errors of the challenge operations, mapped to answers by the endpoints.
var (
	errTooManySends = errors.New("too many sends for this challenge")
	errDelivery     = errors.New("the code could not be delivered")
)

// challenges owns the one-time codes and links sent to users (chal/<id>):
// it issues them under the send caps, and counts, compares and consumes
// what users send back. Each challenge belongs to a slot (a sign-in flow,
// or a session registering an address) and lives in one store key, so
// its attempts and state change atomically.
type challenges struct {
	realm    *realm
	store    storage.Store
	keys     keyring
	now      func() time.Time
	logger   *zap.Logger
	metrics  *metricSet
	throttle *throttle
	// linkURL builds the link a message carries from its token.
	linkURL func(token string) string
	// pending counts standalone deliveries not yet queued.
	pending *sync.WaitGroup
}

// challengeSlot is what a challenge belongs to: binding is the sign-in
// flow's ID, or "register\x00" and the session ID of a registration; since
// is when that began, which bounds how long the record is kept.
type challengeSlot struct {
	binding string
	since   time.Time
}

// slot is the challenge slot of a sign-in flow.
func (f *flowState) slot() challengeSlot {
	return challengeSlot{binding: f.ID, since: time.Unix(f.Issued, 0)}
}

// id names the challenge of a slot in the store and the delivery log. It
// is derived from the realm and the binding, so neither reveals the
// binding, and one realm cannot name another's challenges.
func (c *challenges) id(s challengeSlot) string {
	return c.keys.storeIDOf("challenge", c.realm.name, s.binding)
}

// ours reports whether a challenge was issued in this realm; one of
// another realm is treated as absent everywhere (SECURITY.md K49).
func (c *challenges) ours(ch *challenge) bool {
	return ch.Realm == c.realm.name
}

// sendRequest is everything needed to issue one code.
type sendRequest struct {
	slot   challengeSlot
	user   string
	sender authenticators.Sender
	limits authenticators.Limits
	ip     string
	// network is the client network in standalone mode ("" with a first
	// factor): caps of users and addresses count per network there.
	network string
	dest    string // the address on file; "" when the user has none
	site    string
	lang    userLang // the user's language, for the message
	// country and perCountry: the destination's country and its cap per
	// hour, against SMS pumping; perCountry 0 is no cap.
	country    string
	perCountry int
	// wait for the first delivery attempt, so a permanent failure reaches
	// the page. Off in standalone mode, where waiting would tell known
	// users from unknown ones by timing: the delivery is then held in
	// held until the answer is out (held must be set).
	wait bool
	held *heldDelivery
	// linkTTL, when set, sends a link of that lifetime instead of a code.
	linkTTL time.Duration
	// bind records dest in the challenge with the code (registration).
	bind bool
	// origin is where and when a link sign-in began (SECURITY.md L57).
	origin *linkOrigin
}

// issue sends a new code for the slot's challenge and returns the
// challenge as it wrote it. A challenge that exists keeps its attempt
// count (SECURITY.md B11): the new code replaces the old one and counts
// against max_sends. For a user without an address the same records are
// written and nothing is sent, so the answer and its timing do not reveal
// who exists.
func (c *challenges) issue(ctx context.Context, sr sendRequest) (*challenge, error) {
	user := sr.user
	cid := c.id(sr.slot)
	sc := sendCheck{method: sr.sender.Method(), lim: sr.limits.Throttle, ip: sr.ip, userID: c.keys.storeID(lockName(user)), network: sr.network}
	if sr.dest != "" {
		sc.destKey = c.keys.storeID(sr.dest)
	}
	if sr.country != "" {
		sc.extra = append(sc.extra, windowCap{"country", "country/" + sr.sender.Method() + "/" + sr.country, sr.perCountry, time.Hour})
	}
	send, err := c.throttle.checkSendCaps(ctx, sc)
	if err != nil {
		return nil, err
	}
	// The cooldowns a used code ends: none when no cooldown is set, so a
	// sign-in then makes no store calls for them.
	var coolKeys []string
	if sc.lim != nil && sc.lim.Cooldown > 0 {
		coolKeys = []string{"u:" + sc.userID}
		if sc.destKey != "" {
			coolKeys = append(coolKeys, sc.destKey)
		}
	}
	if !send {
		// Nothing goes out (no address, or a silent cap of the
		// address): the same records, no message.
		sr.dest = ""
	}
	var code, token string
	var match int
	ttl := time.Duration(sr.limits.CodeTTL)
	if sr.linkTTL > 0 {
		token, err = newLinkToken(cid)
		ttl = sr.linkTTL
		if err == nil {
			match, err = newMatchNumber()
		}
	} else {
		code, err = authenticators.NewCode(sr.limits.CodeLength)
	}
	if err != nil {
		return nil, err
	}
	now := c.now()
	masked := ""
	if sr.dest != "" {
		masked = sr.sender.Mask(sr.dest)
	}
	var ch challenge
	err = c.store.Update(ctx, keyChallenge+cid, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
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
		ch.Realm = c.realm.name
		ch.User = user
		ch.Method = sr.sender.Method()
		if token != "" {
			ch.LinkMAC = c.keys.linkMAC(cid, token)
			ch.Match, ch.From = match, sr.origin
		} else {
			ch.CodeMAC = c.keys.codeMAC(sr.slot.binding, code)
		}
		ch.Sends++
		ch.Destination = masked
		ch.Address = ""
		if sr.bind {
			ch.Address = sr.dest
		}
		ch.Unsent = sr.dest == ""
		ch.CoolKeys = coolKeys
		ch.State = statePending
		if ch.Attempts >= sr.limits.MaxAttempts {
			ch.State = stateDead
		}
		ch.IssuedAt = now
		ch.ExpiresAt = now.Add(ttl)
		ch.KeepUntil = sr.slot.since.Add(flowTTL)
		if ch.KeepUntil.Before(ch.ExpiresAt) {
			ch.KeepUntil = ch.ExpiresAt
		}
		b, err := encodeRecord(ch)
		return b, ch.KeepUntil, storage.Write, err
	})
	if errors.Is(err, errTooManySends) {
		c.metrics.throttle(scopeMaxSends)
	}
	if err != nil {
		return nil, err
	}
	if sr.dest == "" || ch.State != statePending {
		return &ch, nil
	}
	c.metrics.sent(ch.Method)
	msg := authenticators.Message{
		ChallengeID: cid,
		User:        user,
		To:          sr.dest,
		Code:        code,
		Link:        c.linkURL(token),
		TTL:         ttl,
		Site:        sr.site,
	}
	// A final failure, now or after the retries that outlast the wait,
	// reaches markFailed through the delivery log.
	if !sr.wait {
		// The caller starts the delivery once its answer is out.
		c.pending.Add(1)
		sr.held.deliver = func() {
			defer c.pending.Done()
			// A cancelled context queues the message without waiting for
			// the outcome, which reaches the delivery log.
			queueOnly, cancel := context.WithCancel(sr.lang.context(context.Background()))
			cancel()
			_ = sr.sender.Deliver(queueOnly, msg)
		}
		return &ch, nil
	}
	if err := sr.sender.Deliver(sr.lang.context(ctx), msg); err != nil {
		// The channel has logged the failure.
		c.markFailed(ctx, msg.ChallengeID)
		return nil, fmt.Errorf("%w: %v", errDelivery, err)
	}
	return &ch, nil
}

// load reads a challenge; nil when there is none.
func (c *challenges) load(ctx context.Context, cid string) (*challenge, error) {
	rec, err := c.store.Get(ctx, keyChallenge+cid)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return c.decode(rec, true)
}

// markFailed kills a challenge whose code will never arrive, so it does
// not sit accepting guesses (SECURITY.md I41).
func (c *challenges) markFailed(ctx context.Context, cid string) {
	err := c.store.Update(ctx, keyChallenge+cid, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
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
		c.logger.Error("marking challenge failed", zap.Error(err))
	}
}

// verifyOutcome is what a verification attempt came to.
type verifyOutcome struct {
	ok           bool
	attemptsLeft int
	method       string
	// recoveryLeft is how many recovery codes remain after one was used.
	recoveryLeft int
	// address is, for a registration, the address the matched code was
	// sent to.
	address string
	// repeat: the code repeated the one that just succeeded; it makes
	// no new session (SECURITY.md K53).
	repeat bool
}

// codeAttempt is one attempt of a code at the slot's challenge ch (nil
// when there is none, or it is another realm's), stored as cur: the
// challenge's attempt count moves before the code is compared, in the
// same change (SECURITY.md A1, A2); a locked user's code is counted but
// never compared (A4). Wrong, expired, exhausted, unknown and locked all
// come out the same (A7). It returns the change to the challenge, the
// outcome and, on success, the send cooldowns the code ends. The caller
// makes the change in the store operation that counted the attempt in
// the user's lockout (verifier.guarded).
func (c *challenges) codeAttempt(ch *challenge, cur storage.Record, s challengeSlot, user, method, input string, limits authenticators.Limits, locked bool, now time.Time) (storage.Change, verifyOutcome, []string, error) {
	if ch == nil || ch.State != statePending {
		return storage.Change{}, verifyOutcome{}, nil, nil
	}
	code, wellFormed := authenticators.NormalizeCode(input, limits.CodeLength)
	var out verifyOutcome
	var cool []string
	ch.Attempts++
	if ch.Attempts >= limits.MaxAttempts {
		ch.State = stateDead
	}
	out.attemptsLeft = max(0, limits.MaxAttempts-ch.Attempts)
	match := !locked && wellFormed && ch.Method == method && ch.User == user &&
		now.Before(ch.ExpiresAt) && ch.Attempts <= limits.MaxAttempts &&
		hmac.Equal(ch.CodeMAC, c.keys.codeMAC(s.binding, code))
	if match {
		ch.State = stateUsed
		ch.UsedAt = now
		out = verifyOutcome{ok: true, method: ch.Method, address: ch.Address}
		cool = ch.CoolKeys
	}
	b, err := encodeRecord(*ch)
	return storage.Change{Value: b, ExpiresAt: cur.ExpiresAt, Op: storage.Write}, out, cool, err
}

// decode reads a stored challenge; nil when there is none or it is
// another realm's (SECURITY.md K49).
func (c *challenges) decode(cur storage.Record, found bool) (*challenge, error) {
	if !found {
		return nil, nil
	}
	ch, err := decodeRecord[challenge](cur.Value)
	if err != nil {
		return nil, err
	}
	if !c.ours(&ch) {
		return nil, nil
	}
	return &ch, nil
}

// verifyLink checks a link token against the challenge cid of user, as
// verifyCode checks a code: the attempt moves before the compare, in the
// same atomic store operation that consumes the token, so a token works
// once however often it is sent (SECURITY.md A1-A3). here says the
// request comes from the flow's own browser: the challenge is then used
// at once; otherwise it becomes verified, for that browser to pick up.
//
// Confirmed elsewhere, pick must be the challenge's two-digit number
// (SECURITY.md L57); a wrong pick kills the link.
func (c *challenges) verifyLink(ctx context.Context, cid, user, token string, pick int, limits authenticators.Limits, here, locked bool) (bool, error) {
	now := c.now()
	var ok bool
	var cool []string
	err := c.store.Update(ctx, keyChallenge+cid, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		ok = false
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		ch, err := decodeRecord[challenge](cur.Value)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		if ch.State != statePending || ch.LinkMAC == nil || !c.ours(&ch) {
			return nil, time.Time{}, storage.Keep, nil
		}
		ch.Attempts++
		if ch.Attempts >= limits.MaxAttempts {
			ch.State = stateDead
		}
		match := !locked && ch.User == user && now.Before(ch.ExpiresAt) && ch.Attempts <= limits.MaxAttempts &&
			hmac.Equal(ch.LinkMAC, c.keys.linkMAC(cid, token))
		if match && !here && ch.Match != 0 && pick != ch.Match {
			match = false
			ch.State = stateDead
		}
		expires := cur.ExpiresAt
		if match {
			ok = true
			cool = ch.CoolKeys
			ch.UsedAt = now
			ch.State = stateUsed
			if !here {
				ch.State = stateVerified
				ch.ExpiresAt = now.Add(linkPickup)
				if ch.KeepUntil.Before(ch.ExpiresAt) {
					ch.KeepUntil = ch.ExpiresAt
				}
				if expires.Before(ch.KeepUntil) {
					expires = ch.KeepUntil
				}
			}
		}
		b, err := encodeRecord(ch)
		return b, expires, storage.Write, err
	})
	if err != nil {
		return false, fmt.Errorf("counting link attempt: %w", err)
	}
	if ok {
		c.throttle.endCooldown(ctx, cool)
	}
	return ok, nil
}

// pickUp turns the slot's challenge from verified (its link was confirmed
// on another device) to used, once, and returns its method. A user locked
// meanwhile does not pick it up: the challenge dies.
func (c *challenges) pickUp(ctx context.Context, s challengeSlot, user string, locked bool) (string, bool, error) {
	now := c.now()
	var method string
	err := c.store.Update(ctx, keyChallenge+c.id(s), func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		method = ""
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		ch, err := decodeRecord[challenge](cur.Value)
		if err != nil {
			return nil, time.Time{}, storage.Keep, err
		}
		if ch.State != stateVerified || ch.User != user || !now.Before(ch.ExpiresAt) || !c.ours(&ch) {
			return nil, time.Time{}, storage.Keep, nil
		}
		ch.State = stateUsed
		if locked {
			ch.State = stateDead
		} else {
			method = ch.Method
		}
		b, err := encodeRecord(ch)
		return b, cur.ExpiresAt, storage.Write, err
	})
	if err != nil {
		return "", false, fmt.Errorf("picking up linked sign-in: %w", err)
	}
	return method, method != "", nil
}

// siteName names the site in messages: base_url's host, else the
// request's host when it is a plain host name. Anything else a client
// could put in Host becomes "this site", so a stranger cannot choose the
// words of a code email sent to someone else.
func siteName(r *http.Request, baseURL *url.URL) string {
	if baseURL != nil {
		return baseURL.Hostname()
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
