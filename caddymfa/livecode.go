package caddymfa

import (
	"net/http"
	"time"

	"go.uber.org/zap"
)

// keyLiveFlow names the flow whose code a second-factor user was sent
// last: live/<user store ID>, kept while the code lives.
const keyLiveFlow = "live/"

// liveFlow is the record of keyLiveFlow.
type liveFlow struct {
	ID     string    `json:"id"`
	Issued int64     `json:"t"`
	Sent   time.Time `json:"s"`
}

// rememberLive records the flow a code was just sent for, so that signing
// out and in again while it is live reuses it (SECURITY.md L58). Second-
// factor mode only: there the browser holds the user's first factor; in
// standalone mode anybody could name the user and take her flow over.
func (h *Handler) rememberLive(r *http.Request, flow *flowState, ttl time.Duration) {
	if flow.FirstFactor == "" || ttl <= 0 {
		return
	}
	b, err := encodeRecord(liveFlow{ID: flow.ID, Issued: flow.Issued, Sent: h.now().UTC()})
	if err == nil {
		err = h.store.Put(r.Context(), keyLiveFlow+h.keys.storeID(flow.user()), b, h.now().Add(ttl), false)
	}
	if err != nil {
		h.logger.Warn("recording the live code", zap.Error(err))
	}
}

// scopeCooldown is the throttle scope of the per-user and per-address
// cooldown between sends.
const scopeCooldown = "cooldown"

// reuseLive answers a send refused by the cooldown in a new flow of a second-
// factor user who has a code from an earlier flow that still works: the
// browser takes that flow over (same first factor, same user), stays on
// its code form, and is told when the code was sent.
func (h *Handler) reuseLive(w http.ResponseWriter, r *http.Request, flow *flowState) (bool, error) {
	if flow.FirstFactor == "" {
		return false, nil
	}
	rec, err := h.store.Get(r.Context(), keyLiveFlow+h.keys.storeID(flow.user()))
	if err != nil {
		return false, nil // none, or unreadable: the refusal stands
	}
	live, err := decodeRecord[liveFlow](rec.Value)
	if err != nil || live.ID == flow.ID {
		return false, nil
	}
	adopted := *flow
	adopted.ID, adopted.Issued = live.ID, live.Issued
	ch, err := h.challenges.load(r.Context(), h.challenges.id(adopted.slot()))
	if err != nil || ch == nil || ch.User != flow.user() || !ch.delivered() || !h.now().Before(ch.ExpiresAt) {
		return false, err
	}
	v, ok := h.stillLive(r, &adopted)
	if !ok {
		return false, nil
	}
	c, err := h.flows.cookie(r, &adopted)
	if err != nil {
		return false, err
	}
	http.SetCookie(w, c)
	v.Message = "The code sent at " + live.Sent.Format("15:04 MST") + " still works."
	v.SentAt = live.Sent.Format(time.RFC3339)
	return true, h.pages.render(w, r, v)
}
