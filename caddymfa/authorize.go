package caddymfa

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"
)

// errCodeStepUp is the error of a JSON answer to a request whose session
// is valid in the realm but not good enough for the handler it reached.
const errCodeStepUp = "step_up_required"

// gate is what a handler asks of a session beyond its realm: that the
// handler's config still admits the user, and that a method it accepts
// was verified recently enough (SECURITY.md K50). It answers from the
// provisioned config alone, with no store read, when a session is loaded
// into the handler's cache; a reload builds a new gate and a new cache,
// so a removed or disabled user is refused at the next request.
type gate struct {
	dir        *directory
	standalone bool
	// methods are the accepted methods; none means any session.
	methods []string
	maxAge  time.Duration
}

// strict reports whether the gate asks for a verified factor: methods or
// max_age is set. Policy exemptions then let nobody through (N61).
func (g *gate) strict() bool {
	return len(g.methods) > 0 || g.maxAge > 0
}

// admits reports whether the handler's config admits the session's user:
// in standalone mode a user listed and not disabled, or an address that
// allow_emails matches; in second-factor mode any first-factor user the
// directory does not list as disabled (the session's first factor is
// checked on every request).
func (g *gate) admits(s *session) bool {
	if g.dir.disabled(s.User) {
		return false
	}
	if !g.standalone {
		return s.FirstFactor != ""
	}
	if _, listed := g.dir.users[s.User]; listed {
		return true
	}
	return g.dir.allowed(s.User)
}

// allowed reports whether an unlisted user is an address allow_emails
// matches.
func (d *directory) allowed(user string) bool {
	if !strings.Contains(user, "@") {
		return false
	}
	for _, p := range d.allowEmails {
		if ok, _ := path.Match(p, user); ok {
			return true
		}
	}
	return false
}

// goodUntil is until when (unix nanoseconds) the session satisfies the
// gate: forever without methods and max_age; else until the last
// verification of an accepted method turns max_age old, or never (0)
// when there is none. A session made by a policy exemption has no
// verification (N61).
func (g *gate) goodUntil(s *session) int64 {
	if !g.strict() {
		return math.MaxInt64
	}
	var last time.Time
	for m, t := range s.Verified {
		if isFactor(m) && g.accepts(m) && t.After(last) {
			last = t
		}
	}
	switch {
	case last.IsZero():
		return 0
	case g.maxAge <= 0:
		return math.MaxInt64
	}
	return last.Add(g.maxAge).UnixNano()
}

// accepts reports whether the gate accepts a method's verification.
func (g *gate) accepts(method string) bool {
	return len(g.methods) == 0 || slices.Contains(g.methods, method)
}

// wanted are the methods a step-up asks for: the accepted ones, or any
// factor.
func (g *gate) wanted() []string {
	if len(g.methods) > 0 {
		return g.methods
	}
	return factorMethods
}

// verifiedAfter is the Verified map of a new session of user made by
// method at now, replacing prev: prev's times carry over when it is the
// same user's, and method's time is now when it is a factor.
func verifiedAfter(prev *session, ff, user, method string, now time.Time) map[string]time.Time {
	v := make(map[string]time.Time, 1)
	if prev != nil && prev.FirstFactor == ff && prev.User == user {
		for m, t := range prev.Verified {
			if isFactor(m) {
				v[m] = t
			}
		}
	}
	if isFactor(method) {
		v[method] = now
	}
	if len(v) == 0 {
		return nil
	}
	return v
}

// msgStepUpRequired is the message of the step_up_required answer.
const msgStepUpRequired = "This page needs a more recent or a different verification."

// stepUp answers a request whose session is valid in the realm but not
// good enough here: a browser goes to the challenge of an accepted
// method and comes back to the page it asked for; anything else gets 401
// step_up_required with the accepted methods.
func (h *Handler) stepUp(w http.ResponseWriter, r *http.Request) error {
	wanted := h.stepUpMethods(strings.Join(h.gate.wanted(), " "))
	loc := h.PathPrefix + "/?return=" + url.QueryEscape(r.URL.RequestURI()) + "&step_up=" + url.QueryEscape(strings.Join(wanted, " "))
	if isNavigation(r) {
		w.Header().Set("Cache-Control", "no-store")
		http.Redirect(w, r, loc, http.StatusFound)
		return nil
	}
	return writeJSON(w, http.StatusUnauthorized, map[string]any{
		"error":    errCodeStepUp,
		"message":  localize(h.pages.requestLang(r), msgStepUpRequired, nil),
		"methods":  wanted,
		"redirect": loc,
	})
}

// stepUpMethods reads the step_up parameter of the sign-in page: the
// methods a handler of the realm asked for, those this handler knows.
func (h *Handler) stepUpMethods(raw string) []string {
	var out []string
	for _, m := range strings.Fields(raw) {
		if isFactor(m) && h.canVerify(m) && !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// checkGate refuses methods and max_age values that cannot work.
func (h *Handler) checkGate() error {
	for _, m := range h.Methods {
		if !isFactor(m) {
			return fmt.Errorf("methods: unknown method %q (want email, sms, totp, passkey or recovery)", m)
		}
		if !h.canVerify(m) {
			return fmt.Errorf("methods: %s is not configured in this handler; add its block (recovery comes with totp)", m)
		}
	}
	if h.MaxAge < 0 {
		return fmt.Errorf("max_age must be positive")
	}
	if len(h.Methods) > 0 || h.MaxAge > 0 {
		if h.Policy == policyNever {
			return fmt.Errorf("methods and max_age ask for a verified factor; policy never asks for none: remove one of them")
		}
	}
	return nil
}

// canVerify reports whether this handler can verify a method.
func (h *Handler) canVerify(method string) bool {
	switch method {
	case methodPasskey:
		return h.Passkey != nil
	case methodTOTP, methodRecovery:
		return h.methods.totp != nil
	}
	_, ok := h.methods.channel(method)
	return ok
}

// allows reports whether a flow takes a method: any, unless it is a
// step-up, which takes the methods asked for.
func (f *flowState) allows(method string) bool {
	return len(f.StepUp) == 0 || slices.Contains(f.StepUp, method)
}
