package caddymfa

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// form is the body of a POST, form-encoded or JSON.
type form struct {
	Username    string   `json:"username"`
	Method      string   `json:"method"`
	Code        string   `json:"code"`
	CurrentCode string   `json:"current_code"`
	Action      string   `json:"action"`
	Address     string   `json:"address"`
	Return      string   `json:"return"`
	Remember    formFlag `json:"remember"`
	CSRFToken   string   `json:"csrf_token"`
	Token       string   `json:"token"` // of a link
	ID          string   `json:"id"`    // a session or device on the account page, a passkey
	// Number is the number picked on the confirm page of a link opened
	// on another device (SECURITY.md L57).
	Number string `json:"number"`
	// Name and Credential are of a passkey (passkey_routes.go).
	Name       string          `json:"name"`
	Credential json.RawMessage `json:"credential"`
	Language   string          `json:"language"`
}

// formFlag is a checkbox: in JSON true, or any non-empty string but
// "false"; in a form, present.
type formFlag bool

func (f *formFlag) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case bool:
		*f = formFlag(v)
	case string:
		*f = formFlag(v != "" && v != "false")
	}
	return nil
}

// csrfHeader is the header a script may send the CSRF token in, in its
// canonical form: Header.Get would canonicalize "X-CSRF-Token" into a new
// string on every POST.
const csrfHeader = "X-Csrf-Token"

func readForm(r *http.Request) (form, error) {
	var f form
	if isJSONBody(r.Header.Get("Content-Type")) {
		if err := decodeJSONBody(r.Body, &f); err != nil {
			return f, err
		}
	} else {
		if err := r.ParseForm(); err != nil {
			return f, err
		}
		f = form{
			Username:    r.PostForm.Get("username"),
			Method:      r.PostForm.Get("method"),
			Code:        r.PostForm.Get("code"),
			CurrentCode: r.PostForm.Get("current_code"),
			Action:      r.PostForm.Get("action"),
			Address:     r.PostForm.Get("address"),
			Return:      r.PostForm.Get("return"),
			Remember:    formFlag(r.PostForm.Get("remember") != ""),
			CSRFToken:   r.PostForm.Get("csrf_token"),
			Token:       r.PostForm.Get("token"),
			Number:      r.PostForm.Get("number"),
			Name:        r.PostForm.Get("name"),
			ID:          r.PostForm.Get("id"),
			Language:    r.PostForm.Get("language"),
		}
	}
	if t := r.Header.Get(csrfHeader); t != "" {
		f.CSRFToken = t
	}
	return f, nil
}

// isJSONBody reports whether a Content-Type is JSON's. The type scripts
// send, exactly "application/json", is taken as it is; anything else goes
// through mime.ParseMediaType, which allocates its parameters' map.
func isJSONBody(contentType string) bool {
	if contentType == "application/json" {
		return true
	}
	ct, _, _ := mime.ParseMediaType(contentType)
	return ct == "application/json"
}

// sameOrigin refuses cross-site POSTs by the browser's own signals
// (SECURITY.md G35): Sec-Fetch-Site and Origin.
func sameOrigin(r *http.Request, baseURL *url.URL) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s == "cross-site" || s == "same-site" {
		return false
	}
	origin := r.Header.Get("Origin")
	if origin == "" || origin == "null" {
		// Our pages send Referrer-Policy: no-referrer, under which
		// browsers send "Origin: null" on their own form posts; the CSRF
		// token still guards these.
		return true
	}
	scheme := "http"
	if isHTTPS(r) {
		scheme = "https"
	}
	if strings.EqualFold(origin, scheme+"://"+r.Host) {
		return true
	}
	return baseURL != nil && strings.EqualFold(origin, baseURL.Scheme+"://"+baseURL.Host)
}
