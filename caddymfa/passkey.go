package caddymfa

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators/passkey"
	"github.com/caddymfa/caddy-mfa/storage"
)

// methodPasskey is the method of a sign-in with a passkey.
const methodPasskey = "passkey"

// Store keys of passkeys (DESIGN.md, "State").
const (
	// keyPasskeyCeremony + HMAC(kind, binding): the state of a pending
	// registration or sign-in, bound to the flow or session that asked;
	// TTL passkey.CeremonyTimeout; taken (deleted) by the answer.
	keyPasskeyCeremony = "pkch/"
	// keyPasskeyHandle + hex(user handle) → user: who a discoverable
	// passkey names (passwordless sign-in); durable.
	keyPasskeyHandle = "pkh/"
	// keyPasskeyCredential + HMAC(credential ID) → user: a credential is
	// registered to one user only; durable.
	keyPasskeyCredential = "pkc/"
)

// Passkey bounds.
const (
	// maxPasskeys a user may register, so their record stays small.
	maxPasskeys = 20
	// maxPasskeyName is the longest name of a passkey, in characters.
	maxPasskeyName = 64
	// passkeyHandleLen is the length of a user handle, in bytes.
	passkeyHandleLen = 32
)

// Ceremony kinds.
const (
	ceremonyRegister = "register"
	ceremonyLogin    = "login"
)

// passkeyFactor is a registered passkey in the user's record.
type passkeyFactor struct {
	passkey.Credential
	Name     string    `json:"name"`
	Added    time.Time `json:"added"`
	LastUsed time.Time `json:"used,omitzero"`
}

// passkeyInfo is a passkey as users and administrators see it: never
// its key.
type passkeyInfo struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	Added    time.Time  `json:"added"`
	LastUsed *time.Time `json:"last_used,omitempty"`
}

func (p passkeyFactor) info() passkeyInfo {
	i := passkeyInfo{ID: base64.RawURLEncoding.EncodeToString(p.ID), Name: p.Name, Added: p.Added}
	if !p.LastUsed.IsZero() {
		t := p.LastUsed
		i.LastUsed = &t
	}
	return i
}

func passkeyInfos(ps []passkeyFactor) []passkeyInfo {
	out := make([]passkeyInfo, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.info())
	}
	return out
}

func credentialsOf(ps []passkeyFactor) []passkey.Credential {
	out := make([]passkey.Credential, len(ps))
	for i, p := range ps {
		out[i] = p.Credential
	}
	return out
}

// ceremony is a registration or sign-in waiting for the authenticator's
// answer (pkch/): whom it is for, and the relying party's state, which
// holds the challenge.
type ceremony struct {
	User string `json:"u,omitempty"`
	// Handle is the user handle a registration was offered with.
	Handle []byte `json:"h,omitempty"`
	State  []byte `json:"s"`
}

// Errors of passkey registration that the page explains.
var (
	errPasskeyTaken = errors.New("this passkey is registered to another account")
	errTooManyKeys  = errors.New("too many passkeys")
)

// passkeys owns the passkey ceremonies (pkch/) and the indexes of user
// handles (pkh/) and credential IDs (pkc/); the credentials themselves
// live in the user's record (users). It sees no request.
type passkeys struct {
	store storage.Store
	keys  keyring
	now   func() time.Time
	rp    *passkey.RelyingParty
	users *users
	// standalone: sign-in never lists a user's passkeys (that would tell
	// who has one); it asks for a discoverable one and checks its user.
	standalone   bool
	passwordless bool
	enroll       string
	logger       *zap.Logger
	audit        auditor
}

func (pk *passkeys) ceremonyKey(kind, binding string) string {
	return keyPasskeyCeremony + pk.keys.storeID("passkey\x00"+kind+"\x00"+binding)
}

// begin keeps a ceremony for binding, replacing any earlier one of the
// same kind: only the newest challenge of a flow or session can be
// answered.
func (pk *passkeys) begin(ctx context.Context, kind, binding string, c ceremony) error {
	b, err := encodeRecord(c)
	if err != nil {
		return err
	}
	return pk.store.Put(ctx, pk.ceremonyKey(kind, binding), b, pk.now().Add(passkey.CeremonyTimeout), false)
}

// take removes and returns the ceremony of binding, in one atomic step:
// a challenge is answered once (SECURITY.md P2). nil when there is none.
func (pk *passkeys) take(ctx context.Context, kind, binding string) (*ceremony, error) {
	var out *ceremony
	err := pk.store.Update(ctx, pk.ceremonyKey(kind, binding), func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		out = nil
		if !found {
			return nil, time.Time{}, storage.Keep, nil
		}
		if c, err := decodeRecord[ceremony](cur.Value); err == nil {
			out = &c
		}
		return nil, time.Time{}, storage.Delete, nil
	})
	return out, err
}

// startRegistration makes the options of a new passkey for user, bound
// to binding, after the per-user cap on started setups.
func (pk *passkeys) startRegistration(ctx context.Context, binding, user string, rec userRecord) ([]byte, error) {
	if len(rec.Passkeys) >= maxPasskeys {
		return nil, errTooManyKeys
	}
	now := pk.now()
	hour := now.Truncate(time.Hour)
	n, err := pk.store.Incr(ctx, keyThrottle+"passkey/"+pk.keys.storeID(user)+"/"+strconv.FormatInt(hour.Unix(), 10), 1, hour.Add(time.Hour))
	if err != nil {
		return nil, err
	}
	if n > maxEnrollStarts {
		return nil, &throttledError{scope: "enroll", retryAfter: hour.Add(time.Hour).Sub(now)}
	}
	handle := rec.PasskeyHandle
	if len(handle) == 0 {
		handle = make([]byte, passkeyHandleLen)
		if _, err := rand.Read(handle); err != nil {
			return nil, err
		}
	}
	opts, state, err := pk.rp.BeginRegistration(passkey.User{Handle: handle, Name: user}, credentialsOf(rec.Passkeys))
	if err != nil {
		return nil, err
	}
	return opts, pk.begin(ctx, ceremonyRegister, binding, ceremony{User: user, Handle: handle, State: state})
}

// finishRegistration checks the authenticator's answer to the ceremony of
// binding and adds the passkey to user's record, under name. ok is false
// when the answer is refused (no ceremony, another user's, or a response
// the relying party refuses).
func (pk *passkeys) finishRegistration(ctx context.Context, binding, user, name string, response []byte) (passkeyFactor, bool, error) {
	c, err := pk.take(ctx, ceremonyRegister, binding)
	if err != nil || c == nil || c.User != user {
		return passkeyFactor{}, false, err
	}
	cred, err := pk.rp.FinishRegistration(c.State, c.Handle, response)
	if err != nil {
		pk.logger.Info("passkey registration refused", zap.String("user", user), zap.Error(err))
		return passkeyFactor{}, false, nil
	}
	// The credential belongs to this user only (WebAuthn §7.1 step 22).
	credKey := keyPasskeyCredential + pk.keys.storeID("pkc\x00"+string(cred.ID))
	err = pk.store.Update(ctx, credKey, func(cur storage.Record, found bool) ([]byte, time.Time, storage.Op, error) {
		if found && string(cur.Value) != user {
			return nil, time.Time{}, storage.Keep, errPasskeyTaken
		}
		return []byte(user), time.Time{}, storage.WriteDurable, nil
	})
	if err != nil {
		return passkeyFactor{}, false, err
	}
	if err := pk.store.Put(ctx, keyPasskeyHandle+hex.EncodeToString(c.Handle), []byte(user), time.Time{}, true); err != nil {
		return passkeyFactor{}, false, err
	}
	p := passkeyFactor{Credential: cred, Name: name, Added: pk.now()}
	err = pk.users.update(ctx, user, func(rec *userRecord) (storage.Op, error) {
		switch {
		case len(rec.PasskeyHandle) == 0:
			rec.PasskeyHandle = c.Handle
		case !sameBytes(rec.PasskeyHandle, c.Handle):
			return storage.Keep, errFactorChanged
		}
		if len(rec.Passkeys) >= maxPasskeys {
			return storage.Keep, errTooManyKeys
		}
		if p.Name == "" {
			p.Name = "Passkey " + strconv.Itoa(len(rec.Passkeys)+1)
		}
		rec.Passkeys = append(rec.Passkeys, p)
		return storage.WriteDurable, nil
	})
	if err != nil {
		return passkeyFactor{}, false, err
	}
	return p, true, nil
}

// startLogin makes the options of a sign-in bound to binding. user is the
// flow's user; "" for a passwordless sign-in, which any discoverable
// passkey of the site may answer. In second-factor mode the options list
// the user's passkeys; in standalone mode they never do, so the answer
// is the same for every name (SECURITY.md H37). ok is false when a
// second-factor user has no passkey.
func (pk *passkeys) startLogin(ctx context.Context, binding, user string, rec userRecord) ([]byte, bool, error) {
	var allow []passkey.Credential
	if !pk.standalone {
		if len(rec.Passkeys) == 0 {
			return nil, false, nil
		}
		allow = credentialsOf(rec.Passkeys)
	}
	opts, state, err := pk.rp.BeginLogin(allow)
	if err != nil {
		return nil, false, err
	}
	return opts, true, pk.begin(ctx, ceremonyLogin, binding, ceremony{User: user, State: state})
}

// userOfHandle is the user a discoverable passkey names, "" when none.
func (pk *passkeys) userOfHandle(ctx context.Context, handle []byte) (string, error) {
	if len(handle) == 0 || len(handle) > 64 {
		return "", nil
	}
	rec, err := pk.store.Get(ctx, keyPasskeyHandle+hex.EncodeToString(handle))
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return string(rec.Value), nil
}

// check verifies an assertion for user against the ceremony c, with the
// user's passkeys, and records the new counter and when the passkey was
// used, in one atomic update that refuses a counter not above the one
// stored (SECURITY.md P3). It runs inside verifier.run, after the attempt
// was counted; locked users are never checked.
func (pk *passkeys) check(ctx context.Context, c *ceremony, a *passkey.Assertion, user string, locked bool) (bool, error) {
	if locked || c == nil || a == nil {
		return false, nil
	}
	if c.User != "" && c.User != user {
		return false, nil
	}
	rec, err := pk.users.load(ctx, user)
	if err != nil {
		return false, err
	}
	if len(rec.Passkeys) == 0 || len(rec.PasskeyHandle) == 0 {
		return false, nil
	}
	cred, err := pk.rp.FinishLogin(c.State, a, rec.PasskeyHandle, credentialsOf(rec.Passkeys))
	var ce *passkey.CounterError
	switch {
	case errors.As(err, &ce):
		pk.counterBackwards(ctx, user, rec.Passkeys, cred.ID, ce)
		return false, nil
	case err != nil:
		pk.logger.Info("passkey sign-in refused", zap.String("user", user), zap.Error(err))
		return false, nil
	}
	now := pk.now()
	ok := false
	err = pk.users.update(ctx, user, func(r *userRecord) (storage.Op, error) {
		ok = false
		for i := range r.Passkeys {
			p := &r.Passkeys[i]
			if !sameBytes(p.ID, cred.ID) {
				continue
			}
			if cred.SignCount <= p.SignCount && (cred.SignCount != 0 || p.SignCount != 0) {
				// Another sign-in with a higher counter won the race.
				return storage.Keep, &passkey.CounterError{Stored: p.SignCount, Got: cred.SignCount}
			}
			p.SignCount, p.BackupState, p.LastUsed = cred.SignCount, cred.BackupState, now
			p.UserVerified = p.UserVerified || cred.UserVerified
			r.LastMethod = methodPasskey
			ok = true
			return storage.Write, nil
		}
		return storage.Keep, nil
	})
	if errors.As(err, &ce) {
		pk.counterBackwards(ctx, user, rec.Passkeys, cred.ID, ce)
		return false, nil
	}
	return ok, err
}

// counterBackwards writes the audit line of a refused counter.
func (pk *passkeys) counterBackwards(ctx context.Context, user string, ps []passkeyFactor, id []byte, ce *passkey.CounterError) {
	name := ""
	for _, p := range ps {
		if sameBytes(p.ID, id) {
			name = p.Name
		}
	}
	pk.audit.event(ctx, "passkey counter went backwards; sign-in refused", zap.String("user", user), zap.String("passkey", name),
		zap.Uint32("stored_counter", ce.Stored), zap.Uint32("received_counter", ce.Got))
}

// rename gives a user's passkey a new name; ok is false when the user has
// no passkey with that ID.
func (pk *passkeys) rename(ctx context.Context, user string, id []byte, name string) (bool, error) {
	ok := false
	err := pk.users.update(ctx, user, func(rec *userRecord) (storage.Op, error) {
		ok = false
		for i := range rec.Passkeys {
			if sameBytes(rec.Passkeys[i].ID, id) {
				rec.Passkeys[i].Name, ok = name, true
				return storage.WriteDurable, nil
			}
		}
		return storage.Keep, nil
	})
	return ok, err
}

// remove deletes a user's passkey and its index entry; ok is false when
// the user has no passkey with that ID.
func (pk *passkeys) remove(ctx context.Context, user string, id []byte) (passkeyFactor, bool, error) {
	var removed passkeyFactor
	ok := false
	err := pk.users.update(ctx, user, func(rec *userRecord) (storage.Op, error) {
		ok = false
		for i := range rec.Passkeys {
			if sameBytes(rec.Passkeys[i].ID, id) {
				removed, ok = rec.Passkeys[i], true
				rec.Passkeys = append(rec.Passkeys[:i:i], rec.Passkeys[i+1:]...)
				if len(rec.Passkeys) == 0 && rec.LastMethod == methodPasskey {
					rec.LastMethod = ""
				}
				return storage.WriteDurable, nil
			}
		}
		return storage.Keep, nil
	})
	if err != nil || !ok {
		return removed, ok, err
	}
	if err := pk.store.Delete(ctx, keyPasskeyCredential+pk.keys.storeID("pkc\x00"+string(id))); err != nil && !errors.Is(err, storage.ErrNotFound) {
		pk.logger.Error("removing passkey index", zap.Error(err))
	}
	return removed, true, nil
}

// passkeyName checks the name a user gives a passkey: trimmed, at most
// maxPasskeyName characters, no control characters. "" is allowed (a
// name is made up).
func passkeyName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) || utf8.RuneCountInString(s) > maxPasskeyName {
		return "", fmt.Errorf("a passkey name is at most %d characters", maxPasskeyName)
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return "", errors.New("a passkey name cannot hold control characters")
		}
	}
	return s, nil
}

// relyingParty is the passkey relying party of a handler.
type relyingParty = passkey.RelyingParty

// sameBytes compares credential IDs and user handles (in constant time,
// like every comparison in this package, SECURITY.md B15).
func sameBytes(a, b []byte) bool {
	return subtle.ConstantTimeCompare(a, b) == 1
}
