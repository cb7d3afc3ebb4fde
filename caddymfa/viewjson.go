package caddymfa

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"sync"
	"unicode/utf8"
)

// The JSON answers of the sign-in steps are appended field by field into
// a pooled buffer, byte for byte what encoding/json's Encoder writes for a
// view (its omitempty rules, its string escaping with HTML characters as
// \u003c, \u003e and \u0026, a newline at the end), without reflecting over
// all the view's fields on every answer. A view that carries a map, a
// link's origin or passkeys is left to encoding/json (viewJSONFast).
// TestViewJSONMatchesEncodingJSON compares both over every field.

// jsonBufs holds the buffers answers are appended into and JSON request
// bodies read into.
var jsonBufs = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxPooledJSON bounds the buffers put back in the pool: an enrollment
// answer with a QR code is written, then its buffer dropped.
const maxPooledJSON = 8 << 10

// writeViewJSON writes v's JSON answer, which viewJSONFast allows.
func writeViewJSON(w io.Writer, v *view) error {
	bp := jsonBufs.Get().(*[]byte)
	b := v.appendJSON((*bp)[:0])
	_, err := w.Write(b)
	if cap(b) <= maxPooledJSON {
		*bp = b
		jsonBufs.Put(bp)
	}
	return err
}

// decodeJSONBody reads a JSON request body into a pooled buffer and
// decodes it into v, which keeps nothing of the buffer (encoding/json
// copies strings and raw messages out).
func decodeJSONBody(body io.Reader, v any) error {
	return readJSONBody(body, func(b []byte) error { return unmarshalBody(b, v) })
}

// unmarshalBody decodes the JSON body b into v with encoding/json.
func unmarshalBody(b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("decoding JSON body: %w", err)
	}
	return nil
}

// readJSONBody reads a request body into a pooled buffer and hands it to
// decode, which must keep nothing of it.
func readJSONBody(body io.Reader, decode func([]byte) error) error {
	bp := jsonBufs.Get().(*[]byte)
	b, err := readAllInto((*bp)[:0], body)
	if err == nil {
		err = decode(b)
	}
	if cap(b) <= maxPooledJSON {
		*bp = b[:0]
		jsonBufs.Put(bp)
	}
	return err
}

// readAllInto appends what r reads to b until EOF, as io.ReadAll does
// into a new slice.
func readAllInto(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// viewJSONFast reports whether appendJSON writes v: it holds no map, no
// link origin and no passkeys.
func (v *view) viewJSONFast() bool {
	return len(v.Destinations) == 0 && len(v.Register) == 0 && v.Origin == nil && len(v.Passkeys) == 0
}

// appendJSON appends v as encoding/json's Encoder writes it; v must pass
// viewJSONFast. The fields are in the struct's order.
func (v *view) appendJSON(b []byte) []byte {
	b = append(b, `{"step":`...)
	b = appendJSONString(b, v.Step)
	b = jsonStrings(b, `,"methods":`, v.Methods)
	b = jsonString(b, `,"method":`, v.Method)
	b = jsonString(b, `,"destination":`, v.Destination)
	b = jsonInt(b, `,"expires_in":`, v.ExpiresIn)
	if v.AttemptsLeft != nil {
		b = strconv.AppendInt(append(b, `,"attempts_left":`...), int64(*v.AttemptsLeft), 10)
	}
	b = jsonString(b, `,"csrf_token":`, v.CSRFToken)
	b = jsonString(b, `,"redirect":`, v.Redirect)
	b = jsonString(b, `,"user":`, v.User)
	b = jsonString(b, `,"error":`, v.Error)
	b = jsonString(b, `,"message":`, v.Message)
	b = jsonBool(b, `,"can_resend":true`, v.CanResend)
	b = jsonInt(b, `,"retry_after":`, v.RetryAfter)
	b = jsonString(b, `,"enroll":`, v.Enroll)
	b = jsonString(b, `,"qr_png":`, v.QRCode)
	b = jsonString(b, `,"secret":`, v.Secret)
	b = jsonString(b, `,"otpauth_uri":`, v.OTPAuthURI)
	b = jsonBool(b, `,"needs_current_code":true`, v.NeedsCurrent)
	b = jsonStrings(b, `,"recovery_codes":`, v.RecoveryCodes)
	if v.RecoveryLeft != nil {
		b = strconv.AppendInt(append(b, `,"recovery_codes_left":`...), int64(*v.RecoveryLeft), 10)
	}
	b = jsonBool(b, `,"recovery_code_used":true`, v.RecoveryUsed)
	b = jsonString(b, `,"totp_added":`, v.AppAdded)
	b = jsonString(b, `,"return":`, v.Return)
	b = jsonString(b, `,"continue":`, v.Continue)
	b = jsonBool(b, `,"can_skip":true`, v.Skip)
	b = jsonInt(b, `,"remember_device_days":`, v.RememberDays)
	b = jsonStrings(b, `,"link_methods":`, v.LinkMethods)
	b = jsonInt(b, `,"match_number":`, v.MatchNumber)
	if len(v.Numbers) > 0 {
		b = append(b, `,"numbers":[`...)
		for i, n := range v.Numbers {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
		b = append(b, ']')
	}
	b = jsonString(b, `,"sent_at":`, v.SentAt)
	b = jsonBool(b, `,"passwordless":true`, v.Passwordless)
	b = jsonString(b, `,"passkey_page":`, v.PasskeyPage)
	return append(b, '}', '\n')
}

// jsonString appends the member key (`,"name":`) and s, unless s is empty.
func jsonString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendJSONString(append(b, key...), s)
}

func jsonInt(b []byte, key string, n int) []byte {
	if n == 0 {
		return b
	}
	return strconv.AppendInt(append(b, key...), int64(n), 10)
}

// jsonBool appends member (`,"name":true`) when v is true.
func jsonBool(b []byte, member string, v bool) []byte {
	if !v {
		return b
	}
	return append(b, member...)
}

func jsonStrings(b []byte, key string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	b = append(append(b, key...), '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

// appendJSONString appends s as a JSON string the way encoding/json does
// with HTML escaping on: '"' and '\' escaped, \b \f \n \r \t in short
// form, other control characters and <, >, & as \u00XX, invalid UTF-8 as
// \ufffd, and U+2028 and U+2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(append(b, s[start:i]...), `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(append(b, s[start:]...), '"')
}
