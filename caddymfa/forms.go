package caddymfa

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
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
		err := readJSONBody(r.Body, func(b []byte) error {
			if f.decodeFlat(b) {
				return nil
			}
			return unmarshalForm(b, &f)
		})
		if err != nil {
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

// decodeFlat decodes the JSON body b into f, which must be empty, when b
// is a flat object of string members named as f's string fields are,
// with no escapes in them: the bodies of the pages' script and of API
// clients. The body becomes one string and the fields substrings of it,
// one allocation where encoding/json makes a decoder and a string per
// field. It reports false, and leaves f as it was, for anything else
// (other names, other values, escapes, invalid UTF-8, malformed JSON),
// which encoding/json then decodes as always: for what both accept, both
// give the same form (FuzzFormDecodeFlat).
func (f *form) decodeFlat(b []byte) bool {
	type member struct {
		field      *string
		start, end int
	}
	var members [16]member
	n := 0
	i := skipJSONSpace(b, 0)
	if i == len(b) || b[i] != '{' {
		return false
	}
	i = skipJSONSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		i++
	} else {
		for {
			ks, ke, ok := flatJSONString(b, i)
			if !ok {
				return false
			}
			field := f.stringField(b[ks:ke])
			if field == nil {
				return false
			}
			i = skipJSONSpace(b, ke+1)
			if i == len(b) || b[i] != ':' {
				return false
			}
			vs, ve, ok := flatJSONString(b, skipJSONSpace(b, i+1))
			if !ok || !utf8.Valid(b[vs:ve]) || n == len(members) {
				return false
			}
			members[n] = member{field, vs, ve}
			n++
			i = skipJSONSpace(b, ve+1)
			if i < len(b) && b[i] == ',' {
				i = skipJSONSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				i++
				break
			}
			return false
		}
	}
	if skipJSONSpace(b, i) != len(b) {
		return false
	}
	body := string(b)
	for _, m := range members[:n] {
		*m.field = body[m.start:m.end] // the last of a repeated name wins, as in encoding/json
	}
	return true
}

// unmarshalForm decodes the JSON body b into f with encoding/json. It
// decodes into a form of its own and copies it: encoding/json takes its
// target as an interface, which would move every request's form to the
// heap, the flat ones too.
func unmarshalForm(b []byte, f *form) error {
	g := new(form)
	err := unmarshalBody(b, g)
	*f = *g
	return err
}

// stringField is f's string field of a JSON member name, or nil.
func (f *form) stringField(name []byte) *string {
	switch string(name) {
	case "username":
		return &f.Username
	case "method":
		return &f.Method
	case "code":
		return &f.Code
	case "current_code":
		return &f.CurrentCode
	case "action":
		return &f.Action
	case "address":
		return &f.Address
	case "return":
		return &f.Return
	case "csrf_token":
		return &f.CSRFToken
	case "token":
		return &f.Token
	case "id":
		return &f.ID
	case "number":
		return &f.Number
	case "name":
		return &f.Name
	case "language":
		return &f.Language
	}
	return nil
}

// flatJSONString finds the JSON string at b[i:] that has no escapes and
// no control characters, and returns where its text starts and ends (at
// the closing quote).
func flatJSONString(b []byte, i int) (start, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return i + 1, j, true
		case c == '\\' || c < 0x20:
			return 0, 0, false
		}
	}
	return 0, 0, false
}

// skipJSONSpace skips JSON's white space from b[i].
func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
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
