package caddymfa

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/caddymfa/caddy-mfa/storage"
)

// Store keys of remembered devices.
const (
	keyDevice     = "dev/"  // dev/<token hash>: a remembered device
	keyUserDevice = "udev/" // udev/<user>/<token hash>: the index of earlier versions (didx/<user> now)
)

// device is a browser a user asked to remember after a challenge. Its
// token is a random 256-bit value, separate from any session, and only
// its keyed hash is stored.
type device struct {
	// Realm is the realm the device was remembered in; it skips the
	// challenge in no other (SECURITY.md K49).
	Realm       string    `json:"rl"`
	FirstFactor string    `json:"ff"`
	User        string    `json:"u"`
	Created     time.Time `json:"c"`
	// origin is the browser remembered, for the account page and the
	// admin API.
	origin
}

// devices owns the remembered devices (dev/<token hash>) and their
// per-user index (didx/<user>, sessionindex.go). It sees tokens, never
// requests or cookies.
type devices struct {
	realm *realm
	store storage.Store
	keys  keyring
	now   func() time.Time
	ttl   time.Duration // remember_device; 0 is off
	index *userIndex
}

func (d *devices) key(token string) string {
	return deviceID(d.keys, token)
}

// deviceID is the store ID of a device token.
func deviceID(k keyring, token string) string {
	return k.storeID("device\x00" + token)
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
	return fresh && dv.Realm == d.realm.name && dv.FirstFactor == ff && dv.User == ff, nil
}

// remember stores a new device for the user and returns its token and
// when it expires.
func (d *devices) remember(ctx context.Context, ff, user string) (string, time.Time, error) {
	return d.rememberFrom(ctx, ff, user, origin{})
}

// rememberFrom is remember for a browser of origin o.
func (d *devices) rememberFrom(ctx context.Context, ff, user string, o origin) (string, time.Time, error) {
	token, err := randomID()
	if err != nil {
		return "", time.Time{}, err
	}
	now := d.now()
	expires := now.Add(d.ttl)
	b, err := encodeRecord(device{Realm: d.realm.name, FirstFactor: ff, User: user, Created: now, origin: o})
	if err != nil {
		return "", time.Time{}, err
	}
	id := d.key(token)
	if err := d.store.Put(ctx, keyDevice+id, b, expires, true); err != nil {
		return "", time.Time{}, err
	}
	evicted, err := d.index.add(ctx, user, id, expires)
	if err != nil {
		return "", time.Time{}, err
	}
	for _, old := range evicted {
		if err := d.store.Delete(ctx, keyDevice+old); err != nil {
			return "", time.Time{}, err
		}
	}
	return token, expires, nil
}

// forget forgets one device (sign-out).
func (d *devices) forget(ctx context.Context, token string) error {
	id := d.key(token)
	rec, err := d.store.Get(ctx, keyDevice+id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if dv, err := decodeRecord[device](rec.Value); err == nil {
		_ = d.index.remove(ctx, dv.User, id)
	}
	return d.store.Delete(ctx, keyDevice+id)
}

// forgetID forgets one of user's devices by its store ID.
func (d *devices) forgetID(ctx context.Context, user, id string) error {
	if err := d.store.Delete(ctx, keyDevice+id); err != nil {
		return err
	}
	return d.index.remove(ctx, user, id)
}

// forgetUser forgets every remembered device of a user: their factors
// changed, they were locked, or an administrator revoked them.
func (d *devices) forgetUser(ctx context.Context, user string) error {
	taken, err := d.index.take(ctx, user)
	if err != nil {
		return err
	}
	ids, err := sweepLegacy(ctx, d.store, keyUserDevice+user+"/")
	if err != nil {
		return err
	}
	for _, e := range taken {
		ids = append(ids, e.ID)
	}
	for _, id := range ids {
		if err := d.store.Delete(ctx, keyDevice+id); err != nil {
			return err
		}
	}
	return nil
}

// listedDevice is a remembered device as a list of a user's devices
// shows it, with its store ID and expiry.
type listedDevice struct {
	device
	storeID string
	expires time.Time
}

// ofUser lists a user's remembered devices, oldest first; one forgotten
// meanwhile is left out.
func (d *devices) ofUser(ctx context.Context, user string) ([]listedDevice, error) {
	index, err := d.index.entries(ctx, user)
	if err != nil {
		return nil, err
	}
	var out []listedDevice
	for _, e := range index {
		rec, err := d.store.Get(ctx, keyDevice+e.ID)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if dv, err := decodeRecord[device](rec.Value); err == nil && d.now().Sub(dv.Created) < d.ttl {
			out = append(out, listedDevice{device: dv, storeID: e.ID, expires: rec.ExpiresAt})
		}
	}
	return out, nil
}

// count is how many devices a user has remembered.
func (d *devices) count(ctx context.Context, user string) (int, error) {
	list, err := d.ofUser(ctx, user)
	return len(list), err
}

// requestDevice is the store ID of the request's remembered-device
// cookie, "" when it carries no valid one.
func requestDevice(r *http.Request, rm *realm, k keyring) string {
	token, ok := deviceToken(r, rm, k)
	if !ok {
		return ""
	}
	return deviceID(k, token)
}

// deviceToken is the token of the request's device cookie, if it carries
// a valid one, signed for this realm.
func deviceToken(r *http.Request, rm *realm, k keyring) (string, bool) {
	return decodeSigned(k.cookieMACs, "device\x00"+rm.name, rm.read(r, cookieDevice))
}

// deviceCookie is the device cookie carrying token, signed for the realm.
func deviceCookie(r *http.Request, rm *realm, k keyring, token string, expires time.Time) *http.Cookie {
	return rm.cookie(r, cookieDevice, signValue(k.cookieMACs, "device\x00"+rm.name, token), expires)
}
