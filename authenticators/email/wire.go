package email

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	netmail "net/mail"
	"strings"
	"sync"
	"time"

	"github.com/wneessen/go-mail"
)

// A wireMessage is a whole code message in RFC 5322 form, headers and
// MIME body, as go-mail writes it, built once per prepared message and
// split into literal segments around slots for what changes from one
// message to the next: the code, the To address, the Date and the random
// part of the Message-ID. Sending a message then only appends segments
// and values to a buffer (appendTo) instead of building the MIME message
// again.
//
// It is built by go-mail itself (buildWire), with placeholders of the
// same length as the values: letters and digits, which neither
// quoted-printable nor Q-encoding changes and which take one byte each, so
// go-mail breaks lines and splits encoded words at the same places for a
// placeholder as for a value. A value may therefore be split by such a
// break; the slot remembers where (gaps). buildWire checks that every
// placeholder came out as often as it went in, and that substituting
// sample values gives exactly what go-mail writes for them; otherwise
// there is no wireMessage and messages are built by go-mail one by one.
type wireMessage struct {
	segs    []string // literal text; len(segs) == len(slots)+1
	slots   []wireSlot
	literal int // bytes in segs
	codeLen int
}

type slotKind uint8

const (
	slotCode slotKind = iota
	slotTo
	slotDate
	slotID
)

// wireSlot is where a value goes; gaps are the line breaks or encoded-word
// boundaries go-mail put inside it, in order.
type wireSlot struct {
	kind slotKind
	gaps []wireGap
}

// wireGap is text go-mail inserted before byte at of a value.
type wireGap struct {
	at  int
	gap string
}

// What go-mail may put inside a run of letters and digits: a
// quoted-printable soft line break, and the end of one Q-encoded word and
// the start of the next, on the same line or folded.
var wireGaps = []string{"=\r\n", "?= =?UTF-8?q?", "?=\r\n =?UTF-8?q?"}

// Lengths of the slots other than the To address and the code.
const (
	wireDateLen = len(time.RFC1123Z) // "Mon, 02 Jan 2006 15:04:05 -0700"
	wireIDLen   = 32                 // hex of messageID's 16 random bytes
	// wireMaxTo is the longest recipient go-mail writes on the To line
	// itself ("To: <addr>"); a longer one is folded onto a line of its
	// own, so those messages are built by go-mail.
	wireMaxTo = 66
)

// wireValues are the values of one message.
type wireValues struct {
	code, to, date, id string
}

func (v *wireValues) of(k slotKind) string {
	switch k {
	case slotCode:
		return v.code
	case slotTo:
		return v.to
	case slotDate:
		return v.date
	default:
		return v.id
	}
}

// size is the length of the message with v in its slots.
func (w *wireMessage) size(v *wireValues) int {
	n := w.literal
	for _, s := range w.slots {
		n += len(v.of(s.kind))
		for _, g := range s.gaps {
			n += len(g.gap)
		}
	}
	return n
}

// appendTo appends the message with v in its slots to b.
func (w *wireMessage) appendTo(b []byte, v *wireValues) []byte {
	for i, s := range w.slots {
		b = append(b, w.segs[i]...)
		val, at := v.of(s.kind), 0
		for _, g := range s.gaps {
			b = append(b, val[at:g.at]...)
			b = append(b, g.gap...)
			at = g.at
		}
		b = append(b, val[at:]...)
	}
	return append(b, w.segs[len(w.segs)-1]...)
}

// fits reports whether v can go into w's slots and give what go-mail
// would write: a code of the prepared length in letters and digits, a
// recipient go-mail writes as "<addr>" on the To line, a Date and an ID
// of their fixed lengths.
func (w *wireMessage) fits(v *wireValues) bool {
	return len(v.code) == w.codeLen && alnum(v.code) &&
		len(v.date) == wireDateLen && len(v.id) == wireIDLen && alnum(v.id) &&
		plainAddress(v.to)
}

// plainAddress reports whether go-mail writes the address to as "<to>"
// on the To line: printable ASCII, no quoting needed, short enough not to
// be folded, and nothing like an encoded word (ParseAddress refuses it
// too).
func plainAddress(to string) bool {
	if to == "" || len(to) > wireMaxTo || strings.Contains(to, "=?") {
		return false
	}
	for i := 0; i < len(to); i++ {
		if c := to[i]; c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return (&netmail.Address{Address: to}).String() == "<"+to+">"
}

func alnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// wireBuffers holds the buffers messages are written into for sending.
var wireBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 8192); return &b }}

func getWireBuffer() *[]byte { return wireBuffers.Get().(*[]byte) }

// putWireBuffer returns b to the pool, unless it grew larger than a
// batch of code messages needs (a few kilobytes each, 16 at most).
func putWireBuffer(b *[]byte) {
	if cap(*b) > 1<<18 {
		return
	}
	*b = (*b)[:0]
	wireBuffers.Put(b)
}

// msgFields are what a message is built from by go-mail.
type msgFields struct {
	from                    *netmail.Address
	to, subject, text, html string
	date, id, boundary      string
}

// goMailMsg builds the message f describes with go-mail, setting every
// header through it, which encodes header values.
func goMailMsg(f msgFields) *mail.Msg {
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if f.boundary != "" {
		msg.SetBoundary(f.boundary)
	}
	msg.FromMailAddress(f.from)
	msg.ToMailAddress(&netmail.Address{Address: f.to})
	msg.Subject(f.subject)
	msg.SetGenHeader(mail.HeaderDate, f.date)
	msg.SetMessageIDWithValue(f.id)
	// RFC 3834: an automatic message; Exchange: no out-of-office replies.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetGenHeader(mail.HeaderXAutoResponseSuppress, "All")
	msg.SetBodyString(mail.TypeTextPlain, f.text)
	msg.AddAlternativeString(mail.TypeTextHTML, f.html)
	return msg
}

// letters returns n random ASCII letters.
func letters(n int) string {
	const abc = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = abc[int(b[i])%len(abc)]
	}
	return string(b)
}

// buildWire prepares the message f describes, whose subject, text and
// HTML hold placeholder where the code goes, for codes of codeLen
// characters. It returns nil when go-mail's output cannot be cut into
// segments and slots that give exactly what go-mail writes.
func buildWire(f msgFields, placeholder string, codeLen int) *wireMessage {
	if codeLen < 1 {
		return nil
	}
	n := strings.Count(f.subject, placeholder) + strings.Count(f.text, placeholder) + strings.Count(f.html, placeholder)
	domain := "localhost"
	if at := strings.LastIndexByte(f.from.Address, '@'); at >= 0 {
		domain = f.from.Address[at+1:]
	}
	var b [30]byte
	_, _ = rand.Read(b[:])
	f.boundary = hex.EncodeToString(b[:])

	// Placeholders: random letters, distinct, found nowhere in the input.
	input := f.from.String() + f.subject + f.text + f.html + domain
	var ph wireValues
	for {
		ph = wireValues{code: letters(codeLen), to: letters(12) + "@" + letters(12) + ".invalid",
			date: letters(wireDateLen), id: letters(wireIDLen)}
		all := []string{ph.code, ph.to, ph.date, ph.id}
		ok := true
		for i, p := range all {
			if strings.Contains(input, p) {
				ok = false
			}
			for _, q := range all[i+1:] {
				if strings.Contains(p, q) || strings.Contains(q, p) {
					ok = false
				}
			}
		}
		if ok {
			break
		}
	}
	pf := f
	pf.subject = strings.ReplaceAll(f.subject, placeholder, ph.code)
	pf.text = strings.ReplaceAll(f.text, placeholder, ph.code)
	pf.html = strings.ReplaceAll(f.html, placeholder, ph.code)
	pf.to, pf.date, pf.id = ph.to, ph.date, ph.id+"@"+domain
	var out bytes.Buffer
	if _, err := goMailMsg(pf).WriteTo(&out); err != nil {
		return nil
	}
	w := cutWire(out.String(), &ph)
	counts := map[slotKind]int{}
	for _, s := range w.slots {
		counts[s.kind]++
	}
	if counts[slotCode] != n || counts[slotTo] != 1 || counts[slotDate] != 1 || counts[slotID] != 1 {
		return nil
	}
	w.codeLen = codeLen

	// Sample values, with a recipient of another length than its
	// placeholder's: substituted, they must give what go-mail writes.
	sample := wireValues{code: strings.Repeat("0123456789", codeLen/10+1)[:codeLen], to: "a.b@c.example",
		date: time.Now().Format(time.RFC1123Z), id: hex.EncodeToString(b[:16])}
	if !w.fits(&sample) {
		return nil
	}
	sf := f
	sf.subject = strings.ReplaceAll(f.subject, placeholder, sample.code)
	sf.text = strings.ReplaceAll(f.text, placeholder, sample.code)
	sf.html = strings.ReplaceAll(f.html, placeholder, sample.code)
	sf.to, sf.date, sf.id = sample.to, sample.date, sample.id+"@"+domain
	out.Reset()
	if _, err := goMailMsg(sf).WriteTo(&out); err != nil {
		return nil
	}
	if !bytes.Equal(w.appendTo(nil, &sample), out.Bytes()) {
		return nil
	}
	return w
}

// cutWire splits out at every occurrence of a placeholder of ph, also
// when a gap of wireGaps splits it. A placeholder an encoding changed is
// not found, which buildWire's counts catch.
func cutWire(out string, ph *wireValues) *wireMessage {
	w := &wireMessage{}
	kinds := []slotKind{slotCode, slotTo, slotDate, slotID}
	start := 0
	for i := 0; i < len(out); {
		matched := false
		for _, k := range kinds {
			p := ph.of(k)
			if out[i] != p[0] {
				continue
			}
			end, gaps, ok := matchSplit(out, i, p)
			if !ok {
				continue
			}
			w.segs = append(w.segs, out[start:i])
			w.literal += i - start
			w.slots = append(w.slots, wireSlot{kind: k, gaps: gaps})
			start, i, matched = end, end, true
			break
		}
		if !matched {
			i++
		}
	}
	w.segs = append(w.segs, out[start:])
	w.literal += len(out) - start
	return w
}

// matchSplit reports whether p occurs in s at i, its bytes possibly
// separated by gaps of wireGaps, and returns where it ends and the gaps.
func matchSplit(s string, i int, p string) (end int, gaps []wireGap, ok bool) {
	for j := 0; j < len(p); j++ {
		if j > 0 {
			for _, g := range wireGaps {
				if strings.HasPrefix(s[i:], g) {
					gaps = append(gaps, wireGap{at: j, gap: g})
					i += len(g)
					break
				}
			}
		}
		if i >= len(s) || s[i] != p[j] {
			return 0, nil, false
		}
		i++
	}
	return i, gaps, true
}
