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
// and an email when an email transport is configured and the user has an
// address on file. The email is queued, never waited for: a notice must
// not slow or fail the change it reports.
func (h *Handler) notify(r *http.Request, flow *flowState, event, factor string, fields ...zap.Field) {
	ip, _ := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string)
	user := flow.user()
	h.audit(r.Context(), noticeAudit[event], append([]zap.Field{zap.String("user", user), zap.String("factor", factor)}, fields...)...)
	if h.Email == nil {
		return
	}
	to := h.addressFor(r, flow)
	if to == "" {
		return
	}
	queueOnly, cancel := context.WithCancel(context.Background())
	cancel()
	err := h.Email.Notify(queueOnly, authenticators.Notice{
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
