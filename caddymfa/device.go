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

// rememberedDevice reports whether the request carries the cookie of a
// device remembered for the first-factor user ff.
func (h *Handler) rememberedDevice(r *http.Request, ff string) (bool, error) {
	token, ok := decodeSigned(h.keys.cookie, "device", readCookie(r, cookieName(r, deviceCookieName)))
	if !ok {
		return false, nil
	}
	rec, err := h.store.Get(r.Context(), keyDevice+h.keys.storeID("device\x00"+token))
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	d, err := decodeRecord[device](rec.Value)
	if err != nil {
		return false, err
	}
	// The store expires the record; the age check holds even where a
	// store's expiry is coarse.
	fresh := h.now().Sub(d.Created) < time.Duration(h.RememberDevice)
	return fresh && d.FirstFactor == ff && d.User == ff, nil
}

// rememberDevice stores a new device for the user and returns its cookie.
func (h *Handler) rememberDevice(r *http.Request, ff, user string) (*http.Cookie, error) {
	token, err := randomID()
	if err != nil {
		return nil, err
	}
	now := h.now()
	expires := now.Add(time.Duration(h.RememberDevice))
	b, err := encodeRecord(device{FirstFactor: ff, User: user, Created: now})
	if err != nil {
		return nil, err
	}
	id := h.keys.storeID("device\x00" + token)
	if err := h.store.Put(r.Context(), keyDevice+id, b, expires, true); err != nil {
		return nil, err
	}
	if err := h.store.Put(r.Context(), keyUserDevice+user+"/"+id, nil, expires, false); err != nil {
		return nil, err
	}
	return newCookie(r, deviceCookieName, signValue(h.keys.cookie, "device", token), expires), nil
}

// forgetThisDevice forgets the request's device, if any (sign-out).
func (h *Handler) forgetThisDevice(r *http.Request) error {
	token, ok := decodeSigned(h.keys.cookie, "device", readCookie(r, cookieName(r, deviceCookieName)))
	if !ok {
		return nil
	}
	return h.store.Delete(r.Context(), keyDevice+h.keys.storeID("device\x00"+token))
}

// forgetDevices forgets every remembered device of a user: their factors
// changed, or they were locked.
func (h *Handler) forgetDevices(ctx context.Context, user string) error {
	prefix := keyUserDevice + user + "/"
	recs, err := h.store.List(ctx, prefix, 0, false)
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if err := h.store.Delete(ctx, keyDevice+strings.TrimPrefix(rec.Key, prefix)); err != nil {
			return err
		}
	}
	return h.store.DeletePrefix(ctx, prefix)
}
