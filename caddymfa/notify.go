package caddymfa

import (
	"context"
	"net/http"
	"time"

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
	authenticators.NoticeSessionsEnded:        "sessions ended",
}

// notices tells users of changes to their factors: an audit line always,
// and a notice by email to the address on file, or else by text message
// to the phone on file, when such a method is configured. A notice is
// queued, never waited for: it must not slow or fail the change it
// reports.
type notices struct {
	methods *methods
	now     func() time.Time
	logger  *zap.Logger
	audit   auditor
}

// notice is one notice: what happened to which factor, where and from
// where the change was made, and addresses by method that take the place
// of those on file (the old number of a number just replaced).
type notice struct {
	event, factor string
	site, ip      string
	at            map[string]string
	// lang is the user's language: that of the request that made the
	// change, or for an administrator's change, that of the user's last
	// sign-in.
	lang userLang
}

// send audits and sends a notice to the account's user.
func (ns *notices) send(ctx context.Context, a *account, n notice, fields ...zap.Field) {
	user := a.user
	ns.audit.event(ctx, noticeAudit[n.event], append([]zap.Field{userField(user), zap.String("factor", n.factor)}, fields...)...)
	var notifier authenticators.Notifier
	var to string
	for _, ch := range ns.methods.channels() {
		nt, ok := ch.sender.(authenticators.Notifier)
		dest, override := n.at[ch.method]
		if !override {
			dest = a.destination(ctx, ch.method)
		}
		if ok && dest != "" {
			notifier, to = nt, dest
			break
		}
	}
	if notifier == nil {
		return
	}
	queueOnly, cancel := context.WithCancel(n.lang.context(context.Background()))
	cancel()
	err := notifier.Notify(queueOnly, authenticators.Notice{
		User:     user,
		To:       to,
		Site:     n.site,
		Event:    n.event,
		Factor:   n.factor,
		Time:     ns.now(),
		ClientIP: n.ip,
	})
	if err != nil {
		ns.logger.Warn("security notice not sent", userField(user), zap.String("event", n.event), zap.Error(err))
	}
}

// notify sends a notice of a change made by request r, in the language
// of r's user.
func (h *Handler) notify(r *http.Request, a *account, event, factor string, at map[string]string, fields ...zap.Field) {
	h.notices.send(r.Context(), a, notice{event: event, factor: factor, site: h.site(r), ip: clientIP(r), at: at, lang: h.pages.userLang(r)}, fields...)
}

// notifyByAdmin sends a notice of a change an administrator made through
// the admin API (request r), in the language of the user's last sign-in.
// The notice names no client address: the administrator's is not the
// user's business.
func (h *Handler) notifyByAdmin(r *http.Request, a *account, event, factor string, at map[string]string, fields ...zap.Field) {
	h.notices.send(r.Context(), a, notice{event: event, factor: factor, site: h.site(r), at: at, lang: h.lastSignInLang(r.Context(), a)}, fields...)
}

// lastSignInLang is the language the user of a last signed in with (English
// when unknown, or when the record cannot be read).
func (h *Handler) lastSignInLang(ctx context.Context, a *account) userLang {
	rec, err := a.record(ctx)
	if err != nil {
		h.logger.Warn("reading the user's language for a notice", zap.Error(err))
	}
	l := h.pages.catalog().Lookup(rec.Lang)
	if l == nil {
		l = h.pages.catalog().English()
	}
	return userLang{lang: l, pref: l.Tag()}
}

// auditor writes audit events.
type auditor struct {
	// logger is the handler's, named "audit" once: Named makes a new
	// logger each time.
	logger *zap.Logger
}

// event writes an audit event with the client IP of the request behind
// ctx, when it is a request to the site: the address clientIP decided
// on, or Caddy's when the request did not come through a trusted proxy
// (then both are the connection's).
func (a auditor) event(ctx context.Context, msg string, fields ...zap.Field) {
	ce := a.logger.Check(zap.InfoLevel, msg)
	if ce == nil {
		return
	}
	if ip, ok := caddyhttp.GetVar(ctx, clientIPVar).(string); ok {
		fields = append(fields, zap.String("client_ip", ip))
	} else if fromProxy, _ := caddyhttp.GetVar(ctx, caddyhttp.TrustedProxyVarKey).(bool); !fromProxy {
		if ip, ok := caddyhttp.GetVar(ctx, caddyhttp.ClientIPVarKey).(string); ok {
			fields = append(fields, zap.String("client_ip", ip))
		}
	}
	ce.Write(fields...)
}
