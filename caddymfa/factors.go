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

// verifyFactor checks what a user typed for a method. Every entry point
// comes through here, so all of them share one lockout (SECURITY.md J46):
// the attempt is counted as a failure first, in one atomic step, and a
// locked user's input is never compared (A4). A success clears the count.
func (h *Handler) verifyFactor(ctx context.Context, flow *flowState, method, input string) (verifyOutcome, error) {
	user := flow.user()
	locked, err := h.countFailure(ctx, user)
	if err != nil {
		return verifyOutcome{}, err
	}
	var out verifyOutcome
	switch method {
	case methodEmail, methodSMS:
		if _, ok := h.channel(method); ok {
			out, err = h.verifyChallenge(ctx, flow, method, input, locked)
		}
	case methodTOTP, methodRecovery:
		out, err = h.verifyOwnFactor(ctx, user, method, input, locked)
	}
	if err != nil {
		return out, err
	}
	h.metrics.verified(method, out.ok)
	if !out.ok {
		return out, nil
	}
	if err := h.clearFailures(ctx, user); err != nil {
		return verifyOutcome{}, fmt.Errorf("clearing failures: %w", err)
	}
	return out, nil
}

// countFailure counts an attempt in the user's lockout and reports
// whether the user is locked. The attempt that locks a user ends their
// sessions.
func (h *Handler) countFailure(ctx context.Context, user string) (locked bool, err error) {
	locked, justLocked, err := h.countAttempt(ctx, user)
	if err != nil {
		return false, fmt.Errorf("counting attempt: %w", err)
	}
	if justLocked {
		h.metrics.lockout()
		h.audit(ctx, "user locked", zap.String("user", user), zap.Int("failures", h.Lockout.Failures))
		if err := h.revokeUserSessions(ctx, user); err != nil {
			h.logger.Error("revoking sessions of locked user", zap.Error(err))
		}
		if err := h.forgetDevices(ctx, user); err != nil {
			h.logger.Error("forgetting devices of locked user", zap.Error(err))
		}
	}
	return locked, nil
}

// verifyOwnFactor checks a TOTP code or a recovery code against the user's
// record. The check and its effect (the new last step, the used code
// removed) are one atomic store operation, so a code can succeed only
// once even when submitted concurrently (SECURITY.md C18, J47).
func (h *Handler) verifyOwnFactor(ctx context.Context, user, method, input string, locked bool) (verifyOutcome, error) {
	if h.TOTP == nil || locked {
		return verifyOutcome{}, nil
	}
	now := h.now()
	var out verifyOutcome
	err := h.updateUser(ctx, user, func(rec *userRecord) (storage.Op, error) {
		out = verifyOutcome{}
		if method == methodTOTP {
			step, ok, err := h.checkTOTP(rec, input, now)
			if err != nil || !ok {
				return storage.Keep, err
			}
			rec.TOTP.LastStep = step
		} else {
			i, ok, err := totp.MatchRecoveryCode(h.keys.totp, input, rec.Recovery)
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
func (h *Handler) checkTOTP(rec *userRecord, input string, now time.Time) (int64, bool, error) {
	if rec.TOTP == nil {
		return 0, false, nil
	}
	secret, err := totp.Open(h.keys.totp, rec.TOTP.Secret)
	if err != nil {
		return 0, false, fmt.Errorf("opening secret: %w", err)
	}
	return h.TOTP.Verify(secret, now, input, rec.TOTP.LastStep)
}

// currentFactor checks the code a user gives to prove they hold the
// factor they already have, before changing it: a TOTP code or a recovery
// code, in the user's lockout like any other attempt.
func (h *Handler) currentFactor(ctx context.Context, user, input string) (verifyOutcome, error) {
	method := methodRecovery
	if _, digits := authenticators.NormalizeCode(input, h.TOTP.Digits); digits {
		method = methodTOTP
	}
	return h.verifyFactor(ctx, &flowState{User: user}, method, input)
}
