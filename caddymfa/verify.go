package caddymfa

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/totp"
	"github.com/caddymfa/caddy-mfa/storage"
)

// errFactorChanged aborts an update whose factor changed after it was
// checked, e.g. two enrollments racing.
var errFactorChanged = errors.New("the factor changed meanwhile")

// verifier checks what users send back: codes of emails and texts, links,
// authenticator app codes and recovery codes. Every verification goes
// through run, so all of them share one lockout (SECURITY.md J46): the
// attempt is counted as a failure first, in one atomic step, a locked
// user's input is never compared (A4), and a success clears the count.
type verifier struct {
	lockout    *lockout
	challenges *challenges
	users      *users
	sessions   *sessions
	devices    *devices
	methods    *methods
	keys       keyring
	now        func() time.Time
	metrics    *metricSet
	logger     *zap.Logger
	audit      auditor
}

// run is the one count-compare-clear path: it counts the attempt in the
// user's lockout (for the client network in standalone mode; network is
// "" in second-factor mode), lets compare check the input (told whether
// the user is locked, so it counts without comparing), and clears the
// count on success. method names the attempt in the metrics.
func (v *verifier) run(ctx context.Context, user, network, method string, compare func(locked bool) (verifyOutcome, error)) (verifyOutcome, error) {
	locked, err := v.countFailure(ctx, user, network)
	if err != nil {
		return verifyOutcome{}, err
	}
	out, err := compare(locked)
	if err != nil {
		return out, err
	}
	v.metrics.verified(method, out.ok)
	if !out.ok {
		return out, nil
	}
	if err := v.lockout.clear(ctx, user, network); err != nil {
		return verifyOutcome{}, fmt.Errorf("clearing failures: %w", err)
	}
	return out, nil
}

// countFailure counts an attempt in the user's lockout and reports
// whether the user is locked. In second-factor mode, where the guesser
// holds the user's password, the attempt that locks a user ends their
// sessions and forgets their devices; in standalone mode anybody can
// cause a lockout, so it ends nothing (SECURITY.md L54).
func (v *verifier) countFailure(ctx context.Context, user, network string) (locked bool, err error) {
	locked, justLocked, err := v.lockout.count(ctx, user, network)
	if err != nil {
		return false, fmt.Errorf("counting attempt: %w", err)
	}
	if justLocked && network != "" {
		v.metrics.lockout()
		v.audit.event(ctx, "user locked for network", userField(user), zap.String("network", network))
		return locked, nil
	}
	if justLocked {
		v.metrics.lockout()
		v.audit.event(ctx, "user locked", userField(user), zap.Int("failures", v.lockout.failures))
		if _, err := v.sessions.revokeUser(ctx, user); err != nil {
			v.logger.Error("revoking sessions of locked user", zap.Error(err))
		}
		if err := v.devices.forgetUser(ctx, user); err != nil {
			v.logger.Error("forgetting devices of locked user", zap.Error(err))
		}
	}
	return locked, nil
}

// unreadable counts a verification whose input could not be read (an
// oversized or malformed body) as a failure of user (SECURITY.md C21).
func (v *verifier) unreadable(ctx context.Context, user, network string) error {
	if _, err := v.countFailure(ctx, user, network); err != nil {
		return err
	}
	v.metrics.verified(methodOther, false)
	return nil
}

// factor checks what user typed for a method: the code of the slot's
// challenge (email, sms), or a code of the user's app or a recovery code.
// A guess at a challenge that has no delivered code (none was sent: no
// address on file, a refused send, a failed delivery; or it is over) is
// refused without counting in the user's lockout, so nobody can lock a
// user out with codes that never reached her (SECURITY.md L54). It still
// counts in the challenge, so the answer is the same as for any wrong
// code (H37).
func (v *verifier) factor(ctx context.Context, user, network string, s challengeSlot, method, input string) (verifyOutcome, error) {
	if ch, ok := v.methods.channel(method); ok {
		live, err := v.challenges.load(ctx, v.challenges.id(s))
		if err != nil {
			return verifyOutcome{}, err
		}
		if v.challenges.repeatedCode(live, s, user, method, input, ch.limits) {
			// The code that just signed this flow in, again: the same
			// success, counted nowhere (SECURITY.md K53).
			return verifyOutcome{ok: true, method: method, repeat: true}, nil
		}
		if !live.delivered() {
			out, err := v.challenges.verifyCode(ctx, s, user, method, input, ch.limits, true)
			if err == nil {
				v.metrics.verified(method, false)
			}
			return out, err
		}
	}
	return v.run(ctx, user, network, method, func(locked bool) (verifyOutcome, error) {
		switch method {
		case methodEmail, methodSMS:
			if ch, ok := v.methods.channel(method); ok {
				return v.challenges.verifyCode(ctx, s, user, method, input, ch.limits, locked)
			}
		case methodTOTP, methodRecovery:
			return v.ownFactor(ctx, user, method, input, locked)
		}
		return verifyOutcome{}, nil
	})
}

// current checks the code a user gives to prove they hold the factor they
// already have, before changing it: a TOTP code or a recovery code.
func (v *verifier) current(ctx context.Context, user, network, input string) (verifyOutcome, error) {
	method := methodRecovery
	if _, digits := authenticators.NormalizeCode(input, v.methods.totp.Digits); digits {
		method = methodTOTP
	}
	return v.factor(ctx, user, network, challengeSlot{}, method, input)
}

// linkOutcome is what a link confirmation came to.
type linkOutcome struct {
	ok           bool
	user, method string // of the challenge the token names, if any
	// repeat: the link was confirmed just before; nothing was counted or
	// changed (SECURITY.md K53).
	repeat bool
}

// link checks a link token against the challenge cid it names, counted in
// the lockout of that challenge's user like any code. here says the
// request comes from the browser that asked for the link; network is the
// client network in standalone mode. A token naming a challenge that has
// no delivered link counts nowhere.
func (v *verifier) link(ctx context.Context, cid, token, network string, pick int, here bool) (linkOutcome, error) {
	named, err := v.challenges.load(ctx, cid)
	if err != nil {
		return linkOutcome{}, err
	}
	if named != nil && v.challenges.repeatedLink(named, cid, token) {
		return linkOutcome{ok: true, user: named.User, method: named.Method, repeat: true}, nil
	}
	if named == nil || named.User == "" || !named.delivered() {
		v.metrics.verified(methodOther, false)
		return linkOutcome{}, nil
	}
	res := linkOutcome{user: named.User, method: named.Method}
	limits := v.methods.limitsFor(named.Method)
	out, err := v.run(ctx, named.User, network, named.Method, func(locked bool) (verifyOutcome, error) {
		ok, err := v.challenges.verifyLink(ctx, cid, named.User, token, pick, limits, here, locked)
		return verifyOutcome{ok: ok, method: named.Method}, err
	})
	if err != nil {
		return linkOutcome{}, err
	}
	res.ok = out.ok
	return res, nil
}

// pickUp completes the sign-in of a flow whose link was confirmed on
// another device, once, unless the user was locked meanwhile (for the
// client network, in standalone mode).
func (v *verifier) pickUp(ctx context.Context, p principal, network string, s challengeSlot) (string, bool, error) {
	if p.user == "" {
		return "", false, nil
	}
	locked, err := v.lockout.locked(ctx, p.user, network)
	if err != nil {
		return "", false, err
	}
	return v.challenges.pickUp(ctx, s, p.user, locked)
}

// ownFactor checks a TOTP code or a recovery code against the user's
// record. The check and its effect (the new last step, the used code
// removed) are one atomic store operation, so a code can succeed only
// once even when submitted concurrently (SECURITY.md C18, J47).
func (v *verifier) ownFactor(ctx context.Context, user, method, input string, locked bool) (verifyOutcome, error) {
	if v.methods.totp == nil || locked {
		return verifyOutcome{}, nil
	}
	now := v.now()
	var out verifyOutcome
	err := v.users.update(ctx, user, func(rec *userRecord) (storage.Op, error) {
		out = verifyOutcome{}
		if method == methodTOTP {
			step, ok, err := v.checkTOTP(rec, input, now)
			if err != nil || !ok {
				return storage.Keep, err
			}
			rec.TOTP.LastStep = step
		} else {
			i, ok, err := totp.MatchRecoveryCode(v.keys.totp, input, rec.Recovery)
			if err != nil || !ok {
				return storage.Keep, err
			}
			rec.Recovery = append(rec.Recovery[:i:i], rec.Recovery[i+1:]...)
			out.recoveryLeft = len(rec.Recovery)
		}
		out.ok, out.method = true, method
		rec.LastMethod = method
		return storage.WriteDurable, nil
	})
	if err != nil {
		return verifyOutcome{}, fmt.Errorf("checking %s code: %w", method, err)
	}
	return out, nil
}

// checkTOTP reports whether input is a valid TOTP code for the record's
// app, newer than the last one accepted, and its time step.
func (v *verifier) checkTOTP(rec *userRecord, input string, now time.Time) (int64, bool, error) {
	if rec.TOTP == nil {
		return 0, false, nil
	}
	secret, err := totp.Open(v.keys.totp, rec.TOTP.Secret)
	if err != nil {
		return 0, false, fmt.Errorf("opening secret: %w", err)
	}
	return v.methods.totp.Verify(secret, now, input, rec.TOTP.LastStep)
}
