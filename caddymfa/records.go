package caddymfa

import (
	"errors"
	"time"
)

// Store key prefixes (DESIGN.md, "State").
const (
	keyChallenge = "chal/"
	keySession   = "sess/"
	keyUserSess  = "usess/" // usess/<user>/<session key>: index for revoking a user's sessions
	keyLockout   = "lock/"
	keyThrottle  = "thr/"
	keyLog       = "log/"
	keyUser      = "user/"   // user/<user>: enrolled factors; durable
	keyEnroll    = "enroll/" // enroll/<binding hash>: a secret shown but not yet confirmed
	keySecret    = "meta/secret_key"
)

// challengeState is where a challenge stands.
type challengeState string

const (
	statePending challengeState = "pending" // code sent, waiting for it
	stateUsed    challengeState = "used"    // verified once; never again
	stateDead    challengeState = "dead"    // attempts exhausted
	// stateVerified: a link was confirmed on another device; the flow's
	// own browser picks the sign-in up, once (then used).
	stateVerified challengeState = "verified"
)

// challenge is one code or link sent for one flow. It lives in one store
// key, so its attempts and state change atomically.
type challenge struct {
	// Realm is the realm of the flow or session the challenge belongs
	// to; no other realm's handler compares, confirms or picks it up
	// (SECURITY.md K49).
	Realm       string         `json:"rl"`
	User        string         `json:"u"`
	Method      string         `json:"m"`
	CodeMAC     []byte         `json:"c"`
	LinkMAC     []byte         `json:"l,omitempty"` // link mode: stands for the link's token
	Attempts    int            `json:"a"`
	Sends       int            `json:"s"`
	Destination string         `json:"d,omitempty"` // masked, for pages
	State       challengeState `json:"st"`
	IssuedAt    time.Time      `json:"i"`
	ExpiresAt   time.Time      `json:"e"`
	// KeepUntil is when the record itself goes: later than ExpiresAt, so
	// an expired challenge still counts its attempts and sends.
	KeepUntil time.Time `json:"k"`
	// Failed holds a permanent delivery failure to show the user.
	Failed bool `json:"f,omitempty"`
	// Address is, for the registration of an address, the one the
	// current code was sent to, written with the code in one update:
	// confirming the code registers this address or none (SECURITY.md
	// N62).
	Address string `json:"ad,omitempty"`
	// Unsent: nothing was sent for this challenge (no address on file),
	// so a guess at it counts in no lockout.
	Unsent bool `json:"n,omitempty"`
	// CoolKeys name the send cooldowns this challenge started; a used
	// code ends them, so signing in again needs no wait.
	CoolKeys []string `json:"ck,omitempty"`
	// UsedAt is when the code or link succeeded: repeats within
	// repeatWindow answer as that success did (SECURITY.md K53).
	UsedAt time.Time `json:"ua,omitempty"`
	// Match is the two-digit number a link confirmed on another device
	// needs, and From where and when its sign-in began (SECURITY.md
	// L57); link mode only.
	Match int         `json:"mn,omitempty"`
	From  *linkOrigin `json:"fr,omitempty"`
}

// delivered reports whether a challenge has a code or link out there to
// guess: pending, sent, and not failed. A nil challenge has none.
func (ch *challenge) delivered() bool {
	return ch != nil && ch.State == statePending && !ch.Unsent && !ch.Failed
}

// session is a sign-in: a verified factor, or a policy exemption (a
// remembered device, a known place). Method records which; only the
// verification of a factor counts as one (SECURITY.md N61).
type session struct {
	// Realm is the realm the session was made in; it admits nowhere
	// else (SECURITY.md K49).
	Realm string `json:"rl"`
	// FirstFactor is the first-factor user the session was made for ("" in
	// standalone mode); every request must present the same one.
	FirstFactor string    `json:"ff"`
	User        string    `json:"u"`
	Method      string    `json:"m"`
	Host        string    `json:"h"`
	Created     time.Time `json:"c"`
	Expires     time.Time `json:"e"`
	LastSeen    time.Time `json:"l"`
	// origin is the browser the session was made in, for the account
	// page and the admin API.
	origin
	// Device is the store ID of the remembered device of the browser
	// that holds the session, if any: ending one ends the other.
	Device string `json:"dv,omitempty"`
	// Verified is when each factor was last verified in this session:
	// the method that made it, and those passed later to step up
	// (SECURITY.md K50). Policy exemptions never appear here (N61).
	Verified map[string]time.Time `json:"v,omitempty"`
}

// isFactor reports whether a session method is the verification of a
// factor: an emailed or texted code or link, an app code, a recovery
// code. The methods of policy exemptions (known_ip, known_country,
// remembered_device, trusted_network, policy_never), and any method this
// version does not know, are not.
func isFactor(method string) bool {
	switch method {
	case methodEmail, methodSMS, methodTOTP, methodRecovery, methodPasskey:
		return true
	}
	return false
}

// factorWithin reports whether the session was made by passing a factor
// less than window before now. A session made by a policy exemption
// never was, however fresh: only a factor passed in the session's
// lifetime gives the privileges of one (adding an app, registering an
// address, changing a factor).
func (s *session) factorWithin(now time.Time, window time.Duration) bool {
	return isFactor(s.Method) && now.Sub(s.Created) < window
}

// maxRecord bounds the size of a record the decoders accept.
const maxRecord = 64 << 10

var errBadRecord = errors.New("malformed record")
