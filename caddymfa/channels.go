package caddymfa

import (
	"net/http"

	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
	"github.com/caddymfa/caddy-mfa/authenticators/sms"
)

// methodSMS is the method of codes by text message.
const methodSMS = "sms"

// channel is a method that sends a code to an address on file: what sends
// it and under which limits.
type channel struct {
	method string
	sender authenticators.Sender
	limits authenticators.Limits
}

// channel returns the configured message method of that name.
func (h *Handler) channel(method string) (channel, bool) {
	switch {
	case method == methodEmail && h.Email != nil:
		return channel{methodEmail, h.Email, h.Email.Limits}, true
	case method == methodSMS && h.SMS != nil:
		return channel{methodSMS, h.SMS, h.SMS.Limits}, true
	}
	return channel{}, false
}

// channels are the configured message methods, email first.
func (h *Handler) channels() []channel {
	var out []channel
	for _, m := range []string{methodEmail, methodSMS} {
		if ch, ok := h.channel(m); ok {
			out = append(out, ch)
		}
	}
	return out
}

// limitsFor returns the limits of a message method (zero for others).
func (h *Handler) limitsFor(method string) authenticators.Limits {
	ch, _ := h.channel(method)
	return ch.limits
}

// destinationFor is where a code of this method goes for the flow's user:
// the address on file, or the phone number on file when its country is
// allowed. Never an address from the request. "" when there is none.
func (h *Handler) destinationFor(r *http.Request, flow *flowState, method string) string {
	reg, err := h.registered(r, flow.user())
	if err != nil {
		h.logger.Error("reading registered addresses; sending nothing", zap.Error(err))
		return ""
	}
	switch method {
	case methodEmail:
		if reg.Email != "" {
			return reg.Email
		}
		return h.addressFor(r, flow)
	case methodSMS:
		if h.SMS == nil {
			return ""
		}
		phone := reg.Phone
		if phone == "" {
			phone = h.dir.phoneFor(flow.user())
		}
		if phone == "" {
			return ""
		}
		if _, region, err := sms.ParseNumber(phone); err != nil || !h.SMS.AllowedCountry(region) {
			return ""
		}
		return phone
	}
	return ""
}

// phoneCountry is the region of an E.164 number, for the per-country cap.
func phoneCountry(number string) string {
	_, region, err := sms.ParseNumber(number)
	if err != nil {
		return ""
	}
	return region
}

// severalMethods reports whether a user may have more than one method, so
// the one used last is worth remembering.
func (h *Handler) severalMethods() bool {
	return h.TOTP != nil || len(h.channels()) > 1
}

// registered returns the addresses a user registered themselves, when
// registration is on for some method; a disabled user has none.
func (h *Handler) registered(r *http.Request, user string) (userRecord, error) {
	if !h.registrationOn() || h.dir.disabled(user) {
		return userRecord{}, nil
	}
	rec, err := h.loadUser(r.Context(), user)
	if err != nil {
		return userRecord{}, err
	}
	return userRecord{Phone: rec.Phone, Email: rec.Email}, nil
}

// registrationOn reports whether users may register an address.
func (h *Handler) registrationOn() bool {
	return h.SMS != nil && h.SMS.Registration != nil || h.Email != nil && h.Email.Registration != nil
}
