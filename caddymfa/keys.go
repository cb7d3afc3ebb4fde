package caddymfa

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"sync"
)

// minSecretKeyLen is the shortest secret_key accepted, in bytes.
const minSecretKeyLen = 32

// keyring holds the keys derived from secret_key, one per purpose, so a
// value signed for one purpose can never be replayed as another.
type keyring struct {
	cookie []byte // signs cookie values
	code   []byte // keys the HMACs of codes kept in the store
	csrf   []byte // derives CSRF tokens
	store  []byte // hashes session IDs into store keys
	totp   []byte // master key of TOTP secrets and recovery-code hashes

	// codeMACs, csrfMACs, storeMACs and cookieMACs pool the HMAC states
	// of the keys a sign-in uses a dozen times, so each use allocates only
	// its result; cookieMACs also checks session cookies on the hot path,
	// which allocates nothing for it.
	codeMACs, csrfMACs, storeMACs, cookieMACs *macPool
}

func newKeyring(secret []byte) keyring {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("caddy-mfa/" + label))
		return m.Sum(nil)
	}
	cookie := derive("cookie")
	k := keyring{
		cookie: cookie,
		code:   derive("code"),
		csrf:   derive("csrf"),
		store:  derive("store"),
		totp:   derive("totp"),
	}
	k.codeMACs, k.csrfMACs, k.storeMACs, k.cookieMACs = newMACPool(k.code), newMACPool(k.csrf), newMACPool(k.store), newMACPool(k.cookie)
	return k
}

// macPool hands out HMAC-SHA256 states keyed with one key, each with a
// buffer to join the message in.
type macPool struct {
	pool sync.Pool
}

type pooledMAC struct {
	h   hash.Hash
	buf []byte
	sum [sha256.Size]byte
}

func newMACPool(key []byte) *macPool {
	p := new(macPool)
	p.pool.New = func() any { return &pooledMAC{h: hmac.New(sha256.New, key), buf: make([]byte, 0, 256)} }
	return p
}

// sum appends HMAC-SHA256(key, parts joined by NUL) to dst.
func (p *macPool) sum(dst []byte, parts ...string) []byte {
	m := p.mac(parts)
	dst = append(dst, m.sum[:]...)
	p.put(m)
	return dst
}

// hexText and base64Text are the encodings of macPool.encoded.
const (
	hexText = iota
	base64Text
)

// encoded is the first n bytes of HMAC-SHA256(key, parts joined by NUL)
// as hex or unpadded base64url text: the one allocation is the string.
func (p *macPool) encoded(encoding, n int, parts ...string) string {
	var out [2 * sha256.Size]byte
	return string(p.text(&out, p.mac(parts), encoding, n))
}

// text writes the first n bytes of m's sum, in encoding, into out and
// returns them; m goes back to the pool.
func (p *macPool) text(out *[2 * sha256.Size]byte, m *pooledMAC, encoding, n int) []byte {
	var dst []byte
	if encoding == hexText {
		dst = out[:hex.Encode(out[:], m.sum[:n])]
	} else {
		dst = out[:base64.RawURLEncoding.EncodedLen(n)]
		base64.RawURLEncoding.Encode(dst, m.sum[:n])
	}
	p.put(m)
	return dst
}

// mac returns a pooled state holding the HMAC of parts in its sum.
func (p *macPool) mac(parts []string) *pooledMAC {
	m := p.pool.Get().(*pooledMAC)
	m.h.Reset()
	m.buf = m.buf[:0]
	for i, part := range parts {
		if i > 0 {
			m.buf = append(m.buf, 0)
		}
		m.buf = append(m.buf, part...)
	}
	m.h.Write(m.buf)
	m.h.Sum(m.sum[:0])
	return m
}

// macCat is the HMAC of a and b written one after the other, with no NUL
// between them: of a binding such as "f:" and a flow ID, without joining
// them into a new string first.
func (p *macPool) macCat(a, b string) *pooledMAC {
	m := p.pool.Get().(*pooledMAC)
	m.h.Reset()
	m.buf = append(append(m.buf[:0], a...), b...)
	m.h.Write(m.buf)
	m.h.Sum(m.sum[:0])
	return m
}

// macOf is mac of parts and then msg, joined by NUL, for a last part
// that is at hand as bytes.
func (p *macPool) macOf(msg []byte, parts ...string) *pooledMAC {
	m := p.pool.Get().(*pooledMAC)
	m.h.Reset()
	m.buf = m.buf[:0]
	for _, part := range parts {
		m.buf = append(append(m.buf, part...), 0)
	}
	m.buf = append(m.buf, msg...)
	m.h.Write(m.buf)
	m.h.Sum(m.sum[:0])
	return m
}

func (p *macPool) put(m *pooledMAC) {
	if cap(m.buf) <= 4096 {
		p.pool.Put(m)
	}
}

// sessionTag writes the tag of a session ID in a realm into dst (16
// bytes): a cookie value made for one realm is no valid cookie in
// another (SECURITY.md K49). The message is joined in the pooled state's
// buffer, so the tag costs no allocation.
func (k keyring) sessionTag(dst *[16]byte, realm string, id []byte) {
	m := k.cookieMACs.macOf(id, "session", realm)
	copy(dst[:], m.sum[:])
	k.cookieMACs.put(m)
}

// codeMAC is what the store keeps instead of a code: the code never rests
// anywhere in plain text. The challenge ID is mixed in, so a code issued for
// one challenge never matches another.
func (k keyring) codeMAC(challengeID, code string) []byte {
	return k.codeMACs.sum(nil, challengeID, code)
}

// storeID turns a bearer secret (a session ID) into the key it is stored
// under, so a copy of the database yields no usable cookie.
func (k keyring) storeID(secret string) string {
	return k.storeMACs.encoded(hexText, 20, secret)
}

// storeIDOf is storeID of parts joined by NUL, without joining them
// first: storeIDOf("a", "b") == storeID("a\x00b").
func (k keyring) storeIDOf(parts ...string) string {
	return k.storeMACs.encoded(hexText, 20, parts...)
}

// csrfToken binds a CSRF token to a flow or session ID.
func (k keyring) csrfToken(boundTo string) string {
	return k.csrfTokenOf(boundTo, "")
}

func (k keyring) validCSRF(boundTo, token string) bool {
	return k.validCSRFOf(boundTo, "", token)
}

// csrfTokenOf is csrfToken(kind + id) and validCSRFOf validCSRF(kind +
// id, token), without joining kind and id: a sign-in binds its tokens to
// "f:" and the flow's ID on every step.
func (k keyring) csrfTokenOf(kind, id string) string {
	var out [2 * sha256.Size]byte
	return string(k.csrfMACs.text(&out, k.csrfMACs.macCat(kind, id), base64Text, csrfTokenLen))
}

// validCSRFOf compares in constant time without making the expected
// token's string: a token is checked on every POST.
func (k keyring) validCSRFOf(kind, id, token string) bool {
	var out [2 * sha256.Size]byte
	want := k.csrfMACs.text(&out, k.csrfMACs.macCat(kind, id), base64Text, csrfTokenLen)
	return subtle.ConstantTimeCompare(want, []byte(token)) == 1
}

// csrfTokenLen is how many bytes of its HMAC a CSRF token carries.
const csrfTokenLen = 24

// randomID returns 32 random bytes (256 bits), base64url encoded. The
// text is encoded on the stack: the one allocation is the string.
func randomID() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	var text [43]byte
	base64.RawURLEncoding.Encode(text[:], b[:])
	return string(text[:]), nil
}

// randRead fills b from crypto/rand.
func randRead(b []byte) (int, error) { return rand.Read(b) }
