package caddymfa

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/caddymfa/caddy-mfa/storage"
)

// deviceCookieName holds a remembered device's token (SECURITY.md E31).
const deviceCookieName = "mfa_device"

// Store keys of remembered devices.
const (
	keyDevice     = "dev/"  // dev/<token hash>: a remembered device
	keyUserDevice = "udev/" // udev/<user>/<token hash>: index for forgetting a user's devices
)

// device is a browser a user asked to remember after a challenge. Its
// token is a random 256-bit value, separate from any session, and only
// its keyed hash is stored.
type device struct {
	FirstFactor string    `json:"ff"`
	User        string    `json:"u"`
	Created     time.Time `json:"c"`
}

// devices owns the remembered devices (dev/<token hash>) and their
// per-user index (udev/<user>/<token hash>). It sees tokens, never
// requests or cookies.
type devices struct {
	store storage.Store
	keys  keyring
	now   func() time.Time
	ttl   time.Duration // remember_device; 0 is off
}

func (d *devices) key(token string) string {
	return d.keys.storeID("device\x00" + token)
}

// remembered reports whether token is a device remembered for the
// first-factor user ff.
func (d *devices) remembered(ctx context.Context, token, ff string) (bool, error) {
	rec, err := d.store.Get(ctx, keyDevice+d.key(token))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	dv, err := decodeRecord[device](rec.Value)
	if err != nil {
		return false, err
	}
	// The store expires the record; the age check holds even where a
	// store's expiry is coarse.
	fresh := d.now().Sub(dv.Created) < d.ttl
	return fresh && dv.FirstFactor == ff && dv.User == ff, nil
}

// remember stores a new device for the user and returns its token and
// when it expires.
func (d *devices) remember(ctx context.Context, ff, user string) (string, time.Time, error) {
	token, err := randomID()
	if err != nil {
		return "", time.Time{}, err
	}
	now := d.now()
	expires := now.Add(d.ttl)
	b, err := encodeRecord(device{FirstFactor: ff, User: user, Created: now})
	if err != nil {
		return "", time.Time{}, err
	}
	id := d.key(token)
	if err := d.store.Put(ctx, keyDevice+id, b, expires, true); err != nil {
		return "", time.Time{}, err
	}
	if err := d.store.Put(ctx, keyUserDevice+user+"/"+id, nil, expires, false); err != nil {
		return "", time.Time{}, err
	}
	return token, expires, nil
}

// forget forgets one device (sign-out).
func (d *devices) forget(ctx context.Context, token string) error {
	return d.store.Delete(ctx, keyDevice+d.key(token))
}

// forgetUser forgets every remembered device of a user: their factors
// changed, they were locked, or an administrator revoked them.
func (d *devices) forgetUser(ctx context.Context, user string) error {
	prefix := keyUserDevice + user + "/"
	recs, err := d.store.List(ctx, prefix, 0, false)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if err := d.store.Delete(ctx, keyDevice+strings.TrimPrefix(rec.Key, prefix)); err != nil {
			return err
		}
	}
	return d.store.DeletePrefix(ctx, prefix)
}

// count is how many devices a user has remembered (admin API).
func (d *devices) count(ctx context.Context, user string) (int, error) {
	recs, err := d.store.List(ctx, keyUserDevice+user+"/", 0, false)
	return len(recs), err
}

// deviceToken is the token of the request's device cookie, if it carries
// a valid one.
func deviceToken(r *http.Request, k keyring) (string, bool) {
	return decodeSigned(k.cookie, "device", readCookie(r, cookieName(r, deviceCookieName)))
}
