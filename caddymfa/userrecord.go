package caddymfa

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

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
	// Passkeys are the user's registered passkeys (passkey.go), and
	// PasskeyHandle the random user handle their authenticators keep.
	Passkeys      []passkeyFactor `json:"pk,omitempty"`
	PasskeyHandle []byte          `json:"pkh,omitempty"`
	// Lang is the language tag of the user's last sign-in, for notices
	// of changes an administrator makes; "" is English. It is written
	// only when it changes (noteSignIn).
	Lang string `json:"lg,omitempty"`
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
	return u.TOTP == nil && len(u.Recovery) == 0 && u.LastMethod == "" && len(u.Known) == 0 && u.Phone == "" && u.Email == "" && len(u.Passkeys) == 0 && len(u.PasskeyHandle) == 0 && u.Lang == ""
}

// users owns the users' records (user/<name>: enrolled factors, the
// addresses users registered, known places) and answers where a user's
// codes go: the directory (users, users_file, allow_emails), the
// addresses users registered, the address of the first factor.
type users struct {
	store   storage.Store
	dir     *directory
	methods *methods
	logger  *zap.Logger
}

// load reads a user's record; a user with none gets the zero record.
func (u *users) load(ctx context.Context, user string) (userRecord, error) {
	rec, err := u.store.Get(ctx, keyUser+user)
	if errors.Is(err, storage.ErrNotFound) {
		return userRecord{}, nil
	}
	if err != nil {
		return userRecord{}, err
	}
	return decodeRecord[userRecord](rec.Value)
}

// update changes a user's record in one atomic store operation. fn
// edits the record and says what to do with it: Keep, Write or
// WriteDurable (factor changes). A record left empty is deleted. fn may
// run more than once, so it must have no side effects beyond rec.
func (u *users) update(ctx context.Context, user string, fn func(rec *userRecord) (storage.Op, error)) error {
	return u.store.Update(ctx, keyUser+user, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		c, err := editRecord(cur, found, fn)
		return c.Value, c.ExpiresAt, c.Op, err
	})
}

// editRecord is the change users.update makes to a stored user record
// cur: fn's edit, or a delete when fn left the record empty.
func editRecord(cur storage.Record, found bool, fn func(rec *userRecord) (storage.Op, error)) (storage.Change, error) {
	var rec userRecord
	if found {
		var err error
		if rec, err = decodeRecord[userRecord](cur.Value); err != nil {
			return storage.Change{}, err
		}
	}
	op, err := fn(&rec)
	if err != nil || op == storage.Keep {
		return storage.Change{}, err
	}
	if rec.empty() {
		if !found {
			return storage.Change{}, nil
		}
		return storage.Change{Op: storage.Delete}, nil
	}
	b, err := encodeRecord(rec)
	return storage.Change{Value: b, Op: op}, err
}

// principal is whom a request or an operation is about: the first-factor
// identity ("" in standalone mode and for the admin API) and the
// canonical user it signs in. address is the email address the first
// factor supplied (email.address), "" when there is none.
type principal struct {
	firstFactor string
	user        string
	address     string
}

// account is a principal with their record, read from the store at most
// once, however many questions a request asks about the user.
type account struct {
	principal
	users  *users
	rec    userRecord
	err    error
	loaded bool
}

// account returns the account of p.
func (u *users) account(p principal) *account {
	return &account{principal: p, users: u}
}

// record is the user's record, read once.
func (a *account) record(ctx context.Context) (userRecord, error) {
	if !a.loaded {
		a.rec, a.err = a.users.load(ctx, a.user)
		a.loaded = true
	}
	return a.rec, a.err
}

// reload forgets the record read, so the next question reads it again
// (after a change made by this request).
func (a *account) reload(ctx context.Context) (userRecord, error) {
	a.loaded = false
	return a.record(ctx)
}

// registered returns the addresses the user registered themselves, when
// registration is on for some method; a disabled user has none.
func (a *account) registered(ctx context.Context) (userRecord, error) {
	if !a.users.methods.registrationOn() || a.users.dir.disabled(a.user) {
		return userRecord{}, nil
	}
	rec, err := a.record(ctx)
	if err != nil {
		return userRecord{}, err
	}
	return userRecord{Phone: rec.Phone, Email: rec.Email}, nil
}

// destination is where a code of this method goes for the user: the
// address on file, or the phone number on file when its country is
// allowed. Never an address from the request. "" when there is none.
func (a *account) destination(ctx context.Context, method string) string {
	reg, err := a.registered(ctx)
	if err != nil {
		a.users.logger.Error("reading registered addresses; sending nothing", zap.Error(err))
		return ""
	}
	switch method {
	case methodEmail:
		if reg.Email != "" {
			return reg.Email
		}
		if addr := a.users.dir.emailFor(a.user); addr != "" {
			return addr
		}
		return a.address
	case methodSMS:
		ch, ok := a.users.methods.channel(methodSMS)
		if !ok {
			return ""
		}
		phone := reg.Phone
		if phone == "" {
			phone = a.users.dir.phoneFor(a.user)
		}
		if phone == "" {
			return ""
		}
		if ch.deliverable != nil && !ch.deliverable(phone) {
			return ""
		}
		return phone
	}
	return ""
}
