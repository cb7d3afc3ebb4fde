package caddymfa

import (
	"context"
	"errors"
	"time"

	"github.com/caddymfa/caddy-mfa/storage"
)

// Method names beyond the message-based ones.
const (
	methodEmail    = "email"
	methodTOTP     = "totp"
	methodRecovery = "recovery"
)

// userRecord is what a user has enrolled, kept under user/<user>. Changes
// to factors are written durably; it outlives sessions and restarts.
type userRecord struct {
	TOTP *totpFactor `json:"totp,omitempty"`
	// Recovery holds the keyed hashes of the unused recovery codes.
	Recovery [][]byte `json:"rc,omitempty"`
	// LastMethod is the method of the last sign-in, preselected on the
	// choose step.
	LastMethod string `json:"lm,omitempty"`
	// Known are the places the user passed a challenge from, newest
	// first, for policy new_ip and new_country.
	Known []knownPlace `json:"kn,omitempty"`
	// Phone and Email are addresses the user registered themselves
	// (registration); they take the place of those on file.
	Phone string `json:"ph,omitempty"`
	Email string `json:"em,omitempty"`
}

// totpFactor is an enrolled authenticator app.
type totpFactor struct {
	// Secret is the shared secret, sealed with the TOTP key (totp.Seal).
	Secret string `json:"s"`
	// LastStep is the time step of the last accepted code: the replay
	// guard (SECURITY.md C18).
	LastStep int64     `json:"ls"`
	Added    time.Time `json:"a"`
}

func (u *userRecord) empty() bool {
	return u.TOTP == nil && len(u.Recovery) == 0 && u.LastMethod == "" && len(u.Known) == 0 && u.Phone == "" && u.Email == ""
}

// loadUser reads a user's record; a user with none gets the zero record.
func (h *Handler) loadUser(ctx context.Context, user string) (userRecord, error) {
	rec, err := h.store.Get(ctx, keyUser+user)
	if errors.Is(err, storage.ErrNotFound) {
		return userRecord{}, nil
	}
	if err != nil {
		return userRecord{}, err
	}
	return decodeRecord[userRecord](rec.Value)
}

// updateUser changes a user's record in one atomic store operation. fn
// edits the record and says what to do with it: Keep, Write or
// WriteDurable (factor changes). A record left empty is deleted. fn may
// run more than once, so it must have no side effects beyond rec.
func (h *Handler) updateUser(ctx context.Context, user string, fn func(rec *userRecord) (storage.Op, error)) error {
	return h.store.Update(ctx, keyUser+user, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		var rec userRecord
		if found {
			var err error
			if rec, err = decodeRecord[userRecord](cur.Value); err != nil {
				return nil, time.Time{}, storage.Keep, err
			}
		}
		op, err := fn(&rec)
		if err != nil || op == storage.Keep {
			return nil, time.Time{}, storage.Keep, err
		}
		if rec.empty() {
			if !found {
				return nil, time.Time{}, storage.Keep, nil
			}
			return nil, time.Time{}, storage.Delete, nil
		}
		b, err := encodeRecord(rec)
		return b, time.Time{}, op, err
	})
}
