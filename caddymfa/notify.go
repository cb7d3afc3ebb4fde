package caddymfa

import (
	"context"
	"net/http"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/caddymfa/caddy-mfa/authenticators"
)

// noticeAudit is the audit message of each notice event.
var noticeAudit = map[string]string{
	authenticators.NoticeFactorAdded:          "factor added",
	authenticators.NoticeFactorRemoved:        "factor removed",
	authenticators.NoticeRecoveryCodeUsed:     "recovery code used",
	authenticators.NoticeRecoveryCodesRenewed: "recovery codes renewed",
}

// notify tells a user of a change to their factors: an audit line always,
// and a notice by email to the address on file, or else by text message
// to the phone on file, when such a method is configured. The notice is
// queued, never waited for: it must not slow or fail the change it
// reports.
func (h *Handler) notify(r *http.Request, flow *flowState, event, factor string, fields ...zap.Field) {
	h.notifyAt(r, flow, event, factor, nil, fields...)
}

// notifyAt is notify with addresses by method that take the place of
// those on file (the old number of a number just replaced).
func (h *Handler) notifyAt(r *http.Request, flow *flowState, event, factor string, at map[string]string, fields ...zap.Field) {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	user := flow.user()
	h.audit(r.Context(), noticeAudit[event], append([]zap.Field{zap.String("user", user), zap.String("factor", factor)}, fields...)...)
	var notifier authenticators.Notifier
	var to string
	for _, ch := range h.channels() {
		n, ok := ch.sender.(authenticators.Notifier)
		dest, override := at[ch.method]
		if !override {
			dest = h.destinationFor(r, flow, ch.method)
		}
		if ok && dest != "" {
			notifier, to = n, dest
			break
		}
	}
	if notifier == nil {
		return
	}
	queueOnly, cancel := context.WithCancel(context.Background())
	cancel()
	err := notifier.Notify(queueOnly, authenticators.Notice{
		User:     user,
		To:       to,
		Site:     h.siteName(r),
		Event:    event,
		Factor:   factor,
		Time:     h.now(),
		ClientIP: ip,
	})
	if err != nil {
		h.logger.Warn("security notice not sent", zap.String("user", user), zap.String("event", event), zap.Error(err))
	}
}
