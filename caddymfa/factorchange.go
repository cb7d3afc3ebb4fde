package caddymfa

import (
	"net/http"

	"go.uber.org/zap"
)

// factorChange is a change to a user's factors: an app added, replaced or
// removed, a phone number or address registered, an administrator's reset.
type factorChange struct {
	who    *account // the user, as the address lookup sees them
	event  string   // authenticators.Notice* event
	factor string   // the method that changed
	// keep, when set, is the session of the browser that made the change,
	// by the method it was made with: it gets a fresh session.
	keep *cachedSession
	// noticeTo is where the notice goes when it must not go to the
	// changed factor's new address (a phone number replaced: the old
	// number is told, not the new one).
	noticeTo map[string]string
	// byAdmin: an administrator made the change (admin API), so the
	// notice is in the language of the user's last sign-in rather than
	// that of the request.
	byAdmin bool
}

// factorChanged applies SECURITY.md E30 and E31 to a change: every session
// of the user ends server-side (the browser that made the change gets a
// fresh one), every remembered device is forgotten, and the user is
// notified and audited. Failures are logged: the change itself is done.
func (h *Handler) factorChanged(w http.ResponseWriter, r *http.Request, c factorChange, fields ...zap.Field) {
	ctx := r.Context()
	user := c.who.user
	if _, err := h.sessions.revokeUser(ctx, user); err != nil {
		h.logger.Error("ending sessions after a factor change", zap.Error(err))
	}
	if c.keep != nil && w != nil {
		if cookie, err := newSessionCookie(r, h.sessions, c.keep.FirstFactor, c.keep.User, c.keep.Method); err != nil {
			h.logger.Error("renewing the session after a factor change", zap.Error(err))
		} else {
			http.SetCookie(w, cookie)
		}
	}
	if err := h.devices.forgetUser(ctx, user); err != nil {
		h.logger.Error("forgetting devices after a factor change", zap.Error(err))
	}
	if c.byAdmin {
		h.notifyByAdmin(r, c.who, c.event, c.factor, c.noticeTo, fields...)
		return
	}
	h.notify(r, c.who, c.event, c.factor, c.noticeTo, fields...)
}
