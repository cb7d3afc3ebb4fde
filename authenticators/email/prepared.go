package email

import (
	"crypto/rand"
	"encoding/hex"
	netmail "net/mail"
	"strings"
	"sync"
	"text/template/parse"
)

// maxPrepared bounds the prepared messages a Config keeps. The site name
// can come from the request's host (without base_url), so the cache
// starts over when full rather than growing with what clients send.
const maxPrepared = 256

// prepared caches code messages rendered once per language, site and
// lifetime, with a random placeholder where the code goes; a send then
// only puts its code in place. Rendering the three templates is most of
// what building a message costs, and in code mode nothing else in them
// changes from one message to the next.
//
// Only templates that cannot tell one code message from another apart
// from the code are prepared (see preparable): they use no field but the
// code (printed as it is), the link (empty in code mode), the site, the
// lifetime and the language's texts. Any other template is rendered for
// every message, as before.
type prepared struct {
	placeholder string // random, letters and digits, which no escaping changes
	mu          sync.Mutex
	m           map[preparedKey]*renderedMessage
}

type preparedKey struct {
	lang, site, expiresIn string
}

// renderedMessage is a prepared message: the three parts with the
// placeholder, and the whole message as sent, built once by wireFor.
type renderedMessage struct {
	subject, text, html string

	wireOnce sync.Once
	wire     *wireMessage // nil when go-mail's output could not be prepared
}

// wireFor returns the message to from, in RFC 5322 form with slots (see
// wireMessage), for codes of codeLen characters, building it on first use;
// nil when it cannot be prepared. Every message of a Config has the same
// sender and codes of one length; a code of another length does not fit
// (wireMessage.fits) and is built by go-mail.
func (r *renderedMessage) wireFor(from *netmail.Address, placeholder string, codeLen int) *wireMessage {
	r.wireOnce.Do(func() {
		r.wire = buildWire(msgFields{from: from, subject: r.subject, text: r.text, html: r.html}, placeholder, codeLen)
	})
	return r.wire
}

// newPrepared returns a cache for tp, or nil when its templates are not
// preparable.
func newPrepared(tp *templates) *prepared {
	if !preparable(tp) {
		return nil
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return &prepared{placeholder: "mfacode" + hex.EncodeToString(b), m: map[preparedKey]*renderedMessage{}}
}

// entry returns the prepared code message for d (d.Link empty), filling
// the cache on a miss.
func (p *prepared) entry(tp *templates, d TemplateData) (*renderedMessage, error) {
	k := preparedKey{lang: d.language().Tag(), site: d.Site, expiresIn: d.ExpiresIn}
	p.mu.Lock()
	r, ok := p.m[k]
	p.mu.Unlock()
	if ok {
		return r, nil
	}
	r = &renderedMessage{}
	d.Code, d.To, d.User = p.placeholder, "", ""
	var err error
	if r.subject, r.text, r.html, err = tp.render(d); err != nil {
		return nil, err
	}
	p.mu.Lock()
	if len(p.m) >= maxPrepared {
		clear(p.m)
	}
	p.m[k] = r
	p.mu.Unlock()
	return r, nil
}

// render renders a code message (d.Link empty) from the cache, filling it
// on a miss.
func (p *prepared) render(tp *templates, d TemplateData) (subject, text, html string, err error) {
	r, err := p.entry(tp, d)
	if err != nil {
		return "", "", "", err
	}
	subject, text, html = p.fill(r, d.Code)
	return subject, text, html, nil
}

// fill returns the parts of r with code in place of the placeholder.
func (p *prepared) fill(r *renderedMessage, code string) (subject, text, html string) {
	return strings.ReplaceAll(r.subject, p.placeholder, code),
		strings.ReplaceAll(r.text, p.placeholder, code),
		strings.ReplaceAll(r.html, p.placeholder, code)
}

// preparedFields are the fields and methods of TemplateData a preparable
// template may use: what the cache key holds, the code and the link.
var preparedFields = map[string]bool{"Code": true, "Link": true, "Site": true, "ExpiresIn": true, "T": true, "Lang": true, "Dir": true}

// preparable reports whether the templates, as parsed (before html/template
// adds its escapers), use only preparedFields, print .Code only as an
// action of its own ({{.Code}}) or test it in an if, and never pass the
// whole data on ({{.}}, {{template}}, $ alone).
func preparable(tp *templates) bool {
	for _, t := range []*parse.Tree{tp.subject.Tree, tp.text.Tree, tp.html.Tree} {
		if t == nil || !preparableNode(t.Root, false) {
			return false
		}
	}
	return true
}

// preparableNode checks n; codeOK says a .Code here is printed or tested
// as it is.
func preparableNode(n parse.Node, codeOK bool) bool {
	switch n := n.(type) {
	case nil:
		return true
	case *parse.ListNode:
		if n == nil {
			return true
		}
		for _, c := range n.Nodes {
			if !preparableNode(c, false) {
				return false
			}
		}
		return true
	case *parse.TextNode, *parse.CommentNode, *parse.BreakNode, *parse.ContinueNode,
		*parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode, *parse.IdentifierNode:
		return true
	case *parse.ActionNode:
		return preparablePipe(n.Pipe, true)
	case *parse.IfNode:
		return preparablePipe(n.Pipe, true) && preparableNode(n.List, false) && preparableNode(n.ElseList, false)
	case *parse.RangeNode:
		return preparablePipe(n.Pipe, false) && preparableNode(n.List, false) && preparableNode(n.ElseList, false)
	case *parse.WithNode:
		return preparablePipe(n.Pipe, false) && preparableNode(n.List, false) && preparableNode(n.ElseList, false)
	case *parse.PipeNode:
		return preparablePipe(n, false)
	case *parse.FieldNode:
		if len(n.Ident) == 0 || !preparedFields[n.Ident[0]] {
			return false
		}
		return n.Ident[0] != "Code" || (codeOK && len(n.Ident) == 1)
	case *parse.VariableNode:
		// $ is the whole data; $.Field is a field of it; other variables
		// hold what a checked pipeline gave them.
		if n.Ident[0] != "$" {
			return true
		}
		return len(n.Ident) > 1 && preparableNode(&parse.FieldNode{Ident: n.Ident[1:]}, false)
	default:
		// {{.}}, {{template}}, chains, blocks: not preparable.
		return false
	}
}

// preparablePipe checks a pipeline; bare says it is the whole of an
// action or an if condition, where a lone .Code is printed or tested as
// it is.
func preparablePipe(p *parse.PipeNode, bare bool) bool {
	if p == nil {
		return true
	}
	lone := bare && len(p.Cmds) == 1 && len(p.Cmds[0].Args) == 1 && len(p.Decl) == 0
	for _, c := range p.Cmds {
		for _, a := range c.Args {
			if !preparableNode(a, lone) {
				return false
			}
		}
	}
	return true
}
