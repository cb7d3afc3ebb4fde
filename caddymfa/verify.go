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
	if justLocked {
		v.lockedOut(ctx, user, network)
	}
	return locked, nil
}

// lockedOut follows the attempt that locked a user: in second-factor
// mode it ends their sessions and forgets their devices.
func (v *verifier) lockedOut(ctx context.Context, user, network string) {
	v.metrics.lockout()
	if network != "" {
		v.audit.event(ctx, "user locked for network", userField(user), zap.String("network", network))
		return
	}
	v.audit.event(ctx, "user locked", userField(user), zap.Int("failures", v.lockout.failures))
	if _, err := v.sessions.revokeUser(ctx, user); err != nil {
		v.logger.Error("revoking sessions of locked user", zap.Error(err))
	}
	if err := v.devices.forgetUser(ctx, user); err != nil {
		v.logger.Error("forgetting devices of locked user", zap.Error(err))
	}
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
	return v.signIn(ctx, user, network, s, method, input, nil)
}

// signIn is factor for a sign-in that starts the session st (prepared
// for method) when the input is right: the session is written in the same
// store operation as the check (verifier.guarded). A repeated success
// (SECURITY.md K53) writes none. Nil st starts no session.
func (v *verifier) signIn(ctx context.Context, user, network string, s challengeSlot, method, input string, st *sessionStart) (verifyOutcome, error) {
	if ch, ok := v.methods.channel(method); ok {
		return v.channelCode(ctx, user, network, s, method, input, ch.limits, st)
	}
	if method == methodTOTP || method == methodRecovery {
		return v.ownFactor(ctx, user, network, method, input, st)
	}
	return v.run(ctx, user, network, method, func(bool) (verifyOutcome, error) { return verifyOutcome{}, nil })
}

// channelCode checks the code of the slot's challenge (email, sms) in one
// atomic store operation over the challenge and the user's lockout.
func (v *verifier) channelCode(ctx context.Context, user, network string, s challengeSlot, method, input string, limits authenticators.Limits, st *sessionStart) (verifyOutcome, error) {
	now := v.now()
	var cool []string
	out, err := v.guarded(ctx, user, network, keyChallenge+v.challenges.id(s), st, func(own storage.Record, found bool, count func() (bool, error)) (storage.Change, verifyOutcome, error) {
		cool = nil
		ch, err := v.challenges.decode(own, found)
		if err != nil {
			return storage.Change{}, verifyOutcome{}, err
		}
		if v.challenges.repeatedCode(ch, s, user, method, input, limits) {
			// The code that just signed this flow in, again: the same
			// success, counted nowhere (SECURITY.md K53).
			return storage.Change{}, verifyOutcome{ok: true, method: method, repeat: true}, nil
		}
		locked := true // no delivered code: counted in the challenge alone, never compared
		if ch.delivered() {
			if locked, err = count(); err != nil {
				return storage.Change{}, verifyOutcome{}, err
			}
		}
		change, out, c, err := v.challenges.codeAttempt(ch, own, s, user, method, input, limits, locked, now)
		cool = c
		return change, out, err
	})
	if err != nil || out.repeat {
		return out, err
	}
	v.metrics.verified(method, out.ok)
	if out.ok {
		v.challenges.throttle.endCooldown(ctx, cool)
	}
	return out, nil
}

// guarded runs one verification attempt as a single atomic store
// operation over the user's lockout records and the attempt's own record
// (the challenge, or the user's record): attempt reads its record, calls
// count to count the attempt in the lockout before it compares anything
// (count reports whether the user is locked; then attempt must not
// compare), and returns the change to its record and the outcome. A
// success clears the count as clear does. The count, the compare and its
// effect are written together or not at all, so a crash cannot separate
// them and concurrent attempts cannot slip between them (SECURITY.md A1,
// A2, A4, C18, J44, J46); where this took four or five writes it takes
// one. An attempt that never calls count counts in no lockout.
//
// A sign-in's check (ctx carries its language: withSignInLang) also keeps
// that language in the user's record, in the same operation: a success
// writes it when it changed, so the sign-in needs no call of its own.
// And a sign-in that starts the session st writes it, with the user's
// index of sessions, in the same operation when it succeeds (not when it
// repeats a success: K53), so the session needs no write of its own
// either; nil st writes none.
func (v *verifier) guarded(ctx context.Context, user, network, own string, st *sessionStart, attempt func(own storage.Record, found bool, count func() (bool, error)) (storage.Change, verifyOutcome, error)) (verifyOutcome, error) {
	counters := v.lockout.lockKeys(user, network)
	n := len(counters)
	keys := append(counterKeys(counters), own)
	lang, noteLang := signInLang(ctx)
	if noteLang = noteLang && own != keyUser+user; noteLang {
		keys = append(keys, keyUser+user)
	}
	sess := len(keys) // where the session's keys start
	if st != nil {
		keys = append(keys, st.keys()...)
	}
	now := v.now()
	var out verifyOutcome
	var justLocked bool
	err := v.lockout.store.UpdateMany(ctx, keys, func(cur []storage.Record, found []bool) ([]storage.Change, error) {
		changes := make([]storage.Change, len(keys))
		counted, locked := false, false
		justLocked = false
		count := func() (bool, error) {
			if !counted {
				var err error
				if locked, justLocked, err = countIn(counters, cur[:n], found[:n], now, changes[:n]); err != nil {
					return false, err
				}
				counted = true
			}
			return locked, nil
		}
		var err error
		changes[n], out, err = attempt(cur[n], found[n], count)
		if err != nil {
			return nil, err
		}
		if out.ok && counted {
			clearIn(found[:n], changes[:n])
		}
		if noteLang && out.ok && !out.repeat {
			if changes[n+1], err = editRecord(cur[n+1], found[n+1], func(rec *userRecord) (storage.Op, error) {
				if rec.Lang == lang {
					return storage.Keep, nil
				}
				rec.Lang = lang
				return storage.Write, nil
			}); err != nil {
				return nil, err
			}
		}
		if st != nil {
			st.evicted = nil
			if out.ok && !out.repeat {
				written, err := st.changes(cur[sess:], found[sess:])
				if err != nil {
					return nil, err
				}
				copy(changes[sess:], written)
			}
		}
		return changes, nil
	})
	if err != nil {
		return verifyOutcome{}, fmt.Errorf("counting attempt: %w", err)
	}
	if justLocked {
		v.lockedOut(ctx, user, network)
	}
	return out, nil
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
// record. The lockout count, the check and its effect (the new last step,
// the used code removed, synced before the answer) are one atomic store
// operation, so a code can succeed only once even when submitted
// concurrently (SECURITY.md C18, J47).
func (v *verifier) ownFactor(ctx context.Context, user, network, method, input string, st *sessionStart) (verifyOutcome, error) {
	now := v.now()
	out, err := v.guarded(ctx, user, network, keyUser+user, st, func(own storage.Record, found bool, count func() (bool, error)) (storage.Change, verifyOutcome, error) {
		locked, err := count()
		if err != nil || locked || v.methods.totp == nil {
			return storage.Change{}, verifyOutcome{}, err
		}
		var out verifyOutcome
		change, err := editRecord(own, found, func(rec *userRecord) (storage.Op, error) {
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
			if tag, ok := signInLang(ctx); ok {
				rec.Lang = tag
			}
			return storage.WriteDurable, nil
		})
		if err != nil {
			return storage.Change{}, verifyOutcome{}, fmt.Errorf("checking %s code: %w", method, err)
		}
		return change, out, nil
	})
	if err != nil {
		return verifyOutcome{}, err
	}
	v.metrics.verified(method, out.ok)
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
