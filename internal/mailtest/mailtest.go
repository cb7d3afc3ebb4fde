// Package mailtest decodes the messages that tests receive, from the
// outbox transport's .eml files or from the in-process SMTP server: the
// headers, the subject, and the text and HTML parts with their transfer
// encodings undone.
package mailtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
)

// Message is a decoded message.
type Message struct {
	Header  mail.Header
	Subject string // decoded from encoded words
	Text    string // every text/plain part, decoded
	HTML    string // every text/html part, decoded
}

// Parse decodes an RFC 5322 message and its MIME parts.
func Parse(raw []byte) (Message, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{}, fmt.Errorf("parsing message: %w", err)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Message{}, fmt.Errorf("decoding subject: %w", err)
	}
	m := Message{Header: msg.Header, Subject: subject}
	if err := m.walk(msg.Header.Get, msg.Body); err != nil {
		return Message{}, err
	}
	return m, nil
}

func (m *Message) walk(header func(string) string, body io.Reader) error {
	mt, params, err := mime.ParseMediaType(header("Content-Type"))
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("reading MIME part: %w", err)
			}
			if err := m.walk(p.Header.Get, p); err != nil {
				return err
			}
		}
	}
	r := body
	switch strings.ToLower(header("Content-Transfer-Encoding")) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, body) // skips line breaks
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("decoding %s part: %w", mt, err)
	}
	switch mt {
	case "text/plain":
		m.Text += string(b)
	case "text/html":
		m.HTML += string(b)
	}
	return nil
}
