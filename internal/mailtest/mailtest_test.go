package mailtest

import (
	"strings"
	"testing"
)

func TestParseDecodesParts(t *testing.T) {
	raw := strings.Join([]string{
		"To: a@example.com",
		"Subject: =?utf-8?q?Your_code?=",
		`Content-Type: multipart/alternative; boundary="b"`,
		"",
		"--b",
		"Content-Type: text/plain; charset=utf-8",
		"Content-Transfer-Encoding: quoted-printable",
		"",
		"code =3D 123456",
		"--b",
		"Content-Type: text/html; charset=utf-8",
		"Content-Transfer-Encoding: base64",
		"",
		"PGI+MTIzNDU2PC9i",
		"Pg==",
		"--b--",
		"",
	}, "\r\n")
	m, err := Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "Your code" || m.Text != "code = 123456" || m.HTML != "<b>123456</b>" || m.Header.Get("To") != "a@example.com" {
		t.Fatalf("Parse = %+v", m)
	}
	if _, err := Parse([]byte("no header line")); err == nil {
		t.Fatal("want an error for a message without headers")
	}
}
