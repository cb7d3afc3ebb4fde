package caddymfa

import (
	"encoding/json"
	"net/http"
	"time"
)

// flashTTL is how long an error kept across a redirect waits for the page
// that shows it.
const flashTTL = time.Minute

// flash is the error of a form, kept across its redirect (POST, 303, GET)
// in a short-lived signed cookie, so the page the browser lands on can
// say what went wrong while a reload of it posts nothing. It holds only
// what the page would have said: an error code, a message of the catalog
// and its arguments, the status and how long to wait; never what the user
// typed.
type flash struct {
	Status  int      `json:"s"`
	Error   string   `json:"e"`
	Message string   `json:"m"`
	Args    []string `json:"a,omitempty"`
	Retry   int64    `json:"r,omitempty"` // until, Unix seconds
	Left    *int     `json:"l,omitempty"` // the attempts left the answer showed
	Method  string   `json:"k,omitempty"` // the method of the code form it showed
	Until   int64    `json:"t"`           // Unix seconds
}

// flashPurpose binds a flash to the handler's realm, the page that shows
// it and the session or flow of the browser, so it cannot be replayed
// elsewhere.
func (h *Handler) flashPurpose(page, binding string) string {
	return "notice\x00" + h.realm.name + "\x00" + page + "\x00" + binding
}

// redirectWithError answers a form's POST whose result is the error v with
// a 303 to dest, the page that shows it, keeping v's error for that page
// (takeFlash). JSON clients get v itself.
func (h *Handler) redirectWithError(w http.ResponseWriter, r *http.Request, v *view, dest, page, binding string) error {
	if wantsJSON(r) {
		return h.pages.render(w, r, v)
	}
	f := flash{Status: v.status, Error: v.Error, Message: v.Message, Args: v.msgArgs, Left: v.AttemptsLeft, Method: v.Method, Until: h.now().Add(flashTTL).Unix()}
	if v.retry > 0 {
		f.Retry = h.now().Add(v.retry).Unix() + 1
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	http.SetCookie(w, h.realm.cookie(r, cookieNotice, signValue(h.keys.cookieMACs, h.flashPurpose(page, binding), string(b)), h.now().Add(flashTTL)))
	http.Redirect(w, r, dest, http.StatusSeeOther)
	return nil
}

// takeFlash puts the error kept for page into v, if the browser carries
// one, and drops the cookie: the error is said once.
func (h *Handler) takeFlash(w http.ResponseWriter, r *http.Request, v *view, page, binding string) {
	f := h.readFlash(w, r, page, binding)
	if f == nil {
		return
	}
	h.applyFlash(v, f)
}

// applyFlash puts the kept error f into v.
func (h *Handler) applyFlash(v *view, f *flash) {
	v.status, v.Error, v.Message, v.msgArgs = f.Status, f.Error, f.Message, f.Args
	if wait := time.Unix(f.Retry, 0).Sub(h.now()); f.Retry > 0 && wait > 0 {
		v.retry = wait
	}
}

// readFlash returns the error kept for page and binding, if the browser
// carries one that is signed for them and still fresh, and drops the
// cookie: the error is said once.
func (h *Handler) readFlash(w http.ResponseWriter, r *http.Request, page, binding string) *flash {
	raw := h.realm.read(r, cookieNotice)
	if raw == "" {
		return nil
	}
	http.SetCookie(w, h.realm.expired(r, cookieNotice))
	payload, ok := decodeSigned(h.keys.cookieMACs, h.flashPurpose(page, binding), raw)
	if !ok {
		return nil
	}
	var f flash
	if json.Unmarshal([]byte(payload), &f) != nil || h.now().Unix() > f.Until || f.Message == "" {
		return nil
	}
	return &f
}
