package caddymfa

import (
	"net/http"
	"time"
)

// flowState is the signed content of the flow cookie: which flow this
// browser is in, for whom, and where to go afterwards. The server keeps
// the challenge under the flow ID; the cookie itself holds no secret.
type flowState struct {
	ID string `json:"id"`
	// Realm is the realm the flow was started in; no other realm's
	// handler continues it (SECURITY.md K49).
	Realm       string `json:"rl"`
	Issued      int64  `json:"t"`
	FirstFactor string `json:"ff,omitempty"`
	// User is the identified user in standalone mode.
	User   string `json:"u,omitempty"`
	Return string `json:"r,omitempty"`
	// Next is where to go after the sign-in before Return, e.g.
	// "register/phone" when the user asked to change their number.
	Next string `json:"x,omitempty"`
	// StepUp, when set, are the methods a handler asked for because the
	// session was not good enough for it; the flow offers only these.
	StepUp []string `json:"su,omitempty"`

	// challenge is the flow's challenge as this request knows it, when
	// known is set: none for a flow it started, the one it wrote for a
	// flow it sent a code for. The answer then need not read it back.
	// Never in the cookie.
	challenge *challenge
	known     bool
}

// knownChallenge records the flow's challenge as this request wrote it.
func (f *flowState) knownChallenge(ch *challenge) {
	f.challenge, f.known = ch, true
}

// user is whom the flow signs in.
func (f *flowState) user() string {
	if f.FirstFactor != "" {
		return f.FirstFactor
	}
	return f.User
}

// typed is, in standalone mode, the name this browser typed on the
// identify step, which the pages show back with a way to change it; ""
// in second-factor mode and in a step-up, whose user is the session's.
func (f *flowState) typed() string {
	if f.FirstFactor != "" || len(f.StepUp) > 0 {
		return ""
	}
	return f.User
}

// flows reads, starts and signs flow cookies.
type flows struct {
	realm *realm
	keys  keyring
	now   func() time.Time
}

// principal is whom the flow signs in.
func (f *flowState) principal() principal {
	return principal{firstFactor: f.FirstFactor, user: f.user()}
}

// read returns the request's flow when its cookie is valid, fresh and
// made for the same first-factor user.
func (fs flows) read(r *http.Request, ff string) *flowState {
	v := fs.realm.read(r, cookieFlow)
	if v == "" {
		return nil
	}
	payload, ok := decodeSigned(fs.keys.cookieMACs, "flow", v)
	if !ok {
		return nil
	}
	f, err := decodeFlow(payload)
	if err != nil || f.ID == "" {
		return nil
	}
	issued := time.Unix(f.Issued, 0)
	if now := fs.now(); now.Sub(issued) > flowTTL || issued.After(now.Add(time.Minute)) {
		return nil
	}
	if f.Realm != fs.realm.name || f.FirstFactor != ff {
		return nil
	}
	return &f
}

// start starts a flow with a fresh random ID; an ID is never taken from
// the request (SECURITY.md E28).
func (fs flows) start(ff, user, ret string) (*flowState, error) {
	id, err := randomID()
	if err != nil {
		return nil, err
	}
	// A new flow has no challenge yet.
	return &flowState{ID: id, Realm: fs.realm.name, Issued: fs.now().Unix(), FirstFactor: ff, User: user, Return: ret, known: true}, nil
}

// cookie is the signed cookie of a flow.
func (fs flows) cookie(r *http.Request, f *flowState) (*http.Cookie, error) {
	var buf [signScratch]byte
	return fs.realm.cookie(r, cookieFlow, signValue(fs.keys.cookieMACs, "flow", appendFlow(buf[:0], f)), time.Time{}), nil
}

// expired is the cookie that ends the browser's flow.
func (fs flows) expired(r *http.Request) *http.Cookie {
	return fs.realm.expired(r, cookieFlow)
}
