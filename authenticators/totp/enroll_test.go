package totp

import (
	"bytes"
	"image/png"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/pquerna/otp"
)

// parsedURI is what an authenticator app reads back from an otpauth URI.
type parsedURI struct {
	labelIssuer, account string
	hasLabelIssuer       bool
	query                url.Values
}

// parseURI parses an otpauth URI with net/url, independently of URI.
func parseURI(t testing.TB, uri string) parsedURI {
	t.Helper()
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatalf("url.Parse(%q): %v", uri, err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Fragment != "" || u.User != nil {
		t.Fatalf("uri %q: scheme %q, host %q, fragment %q", uri, u.Scheme, u.Host, u.Fragment)
	}
	label := strings.TrimPrefix(u.EscapedPath(), "/")
	var p parsedURI
	escIssuer, escAccount, found := strings.Cut(label, ":")
	if !found {
		escAccount = escIssuer
		escIssuer = ""
	}
	p.hasLabelIssuer = found
	if p.labelIssuer, err = url.PathUnescape(escIssuer); err != nil {
		t.Fatalf("uri %q: issuer in label: %v", uri, err)
	}
	if p.account, err = url.PathUnescape(escAccount); err != nil {
		t.Fatalf("uri %q: account: %v", uri, err)
	}
	if p.query, err = url.ParseQuery(u.RawQuery); err != nil {
		t.Fatalf("uri %q: query: %v", uri, err)
	}
	return p
}

// checkRoundTrip asserts SECURITY C20: label and issuer come back as given.
func checkRoundTrip(t testing.TB, c *Config, issuer, account, secret string) string {
	t.Helper()
	uri := URI(c, issuer, account, secret)
	p := parseURI(t, uri)
	if p.account != account {
		t.Fatalf("uri %q: account %q, want %q", uri, p.account, account)
	}
	wantIssuer := issuer
	if wantIssuer == "" {
		wantIssuer = c.Issuer
	}
	if p.labelIssuer != wantIssuer || p.hasLabelIssuer != (wantIssuer != "") {
		t.Fatalf("uri %q: label issuer %q, want %q", uri, p.labelIssuer, wantIssuer)
	}
	if got := p.query.Get("issuer"); got != wantIssuer {
		t.Fatalf("uri %q: issuer parameter %q, want %q", uri, got, wantIssuer)
	}
	if got := p.query["secret"]; len(got) != 1 || got[0] != secret {
		t.Fatalf("uri %q: secret %q, want %q", uri, got, secret)
	}
	for _, k := range []string{"issuer", "algorithm", "digits", "period"} {
		if len(p.query[k]) > 1 {
			t.Fatalf("uri %q: parameter %s repeated", uri, k)
		}
	}
	if strings.ContainsAny(uri, " \r\n\x00#") {
		t.Fatalf("uri %q contains an unescaped space, control character or '#'", uri)
	}
	return uri
}

func TestURI(t *testing.T) {
	c := config(t, 6, "sha1", 1)
	secret := b32raw(seedSHA1)
	uri := URI(c, "Example", "alice@example.com", secret)
	want := "otpauth://totp/Example:alice%40example.com?secret=" + secret +
		"&issuer=Example&algorithm=SHA1&digits=6&period=30"
	if uri != want {
		t.Fatalf("URI =\n%s\nwant\n%s", uri, want)
	}

	tests := []struct{ name, issuer, account string }{
		{"plain", "Example", "alice"},
		{"reserved", "Ex:am?ple&#%/", "al:ice?a=b&c#d%e/f"},
		{"spaces", "My Site", "alice smith"},
		{"plus", "a+b", "c+d"},
		{"crlf", "Evil\r\nHeader: x", "bob\r\n"},
		{"non-ascii", "Bücher Straße", "ユーザー@例え.jp"},
		{"parameter injection", "Example&secret=AAAA", "x?secret=BBBB&issuer=Evil"},
		{"percent sequences", "%41%3A", "%2F%00"},
		{"nul", "a\x00b", "c\x00d"},
		{"no issuer", "", "carol"},
		{"colon only", ":", ":"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uri := checkRoundTrip(t, c, tt.issuer, tt.account, secret)
			// pquerna/otp, which draws the QR code, reads the same issuer.
			key, err := otp.NewKeyFromURL(uri)
			if err != nil {
				t.Fatal(err)
			}
			if key.Issuer() != tt.issuer || key.Secret() != secret {
				t.Fatalf("pquerna/otp reads issuer %q, secret %q", key.Issuer(), key.Secret())
			}
		})
	}

	t.Run("config issuer", func(t *testing.T) {
		c := config(t, 6, "sha1", 1)
		c.Issuer = "From Config"
		p := parseURI(t, URI(c, "", "dave", secret))
		if p.labelIssuer != "From Config" || p.query.Get("issuer") != "From Config" {
			t.Fatalf("issuer %q / %q, want the configured one", p.labelIssuer, p.query.Get("issuer"))
		}
		p = parseURI(t, URI(c, "Override", "dave", secret))
		if p.labelIssuer != "Override" {
			t.Fatalf("issuer %q, want the argument", p.labelIssuer)
		}
	})

	t.Run("parameters", func(t *testing.T) {
		c := &Config{Digits: 8, Algorithm: "sha512", Period: caddy.Duration(60 * time.Second)}
		c.ApplyDefaults()
		key, err := otp.NewKeyFromURL(URI(c, "Example", "erin", strings.ToLower(secret)+"===="))
		if err != nil {
			t.Fatal(err)
		}
		if key.Digits() != otp.DigitsEight || key.Algorithm() != otp.AlgorithmSHA512 || key.Period() != 60 || key.Secret() != secret {
			t.Fatalf("digits %v, algorithm %v, period %d, secret %q", key.Digits(), key.Algorithm(), key.Period(), key.Secret())
		}
	})
}

// FuzzURI checks SECURITY J42 for the otpauth builder: whatever the
// issuer and account, the URI parses, and both come back unchanged.
func FuzzURI(f *testing.F) {
	for _, s := range [][2]string{
		{"Example", "alice@example.com"}, {"", ""}, {":?&#%/", "a b\r\n"},
		{"ü", "\xff\xfe"}, {"%zz", "%"}, {"a=b", "c;d,e"},
	} {
		f.Add(s[0], s[1])
	}
	c := &Config{}
	c.ApplyDefaults()
	secret := b32raw(seedSHA1)
	f.Fuzz(func(t *testing.T, issuer, account string) {
		checkRoundTrip(t, c, issuer, account, secret)
	})
}

func TestQRPNG(t *testing.T) {
	c := config(t, 6, "sha1", 1)
	secret, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ issuer, account string }{
		{"Example", "alice@example.com"},
		{"Bücher & Co: Shop", "ユーザー#1?x=y"},
	} {
		t.Run(tt.issuer, func(t *testing.T) {
			uri := URI(c, tt.issuer, tt.account, secret)
			data, err := QRPNG(uri, 256)
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("not a PNG: %v", err)
			}
			if b := img.Bounds(); b.Dx() != 256 || b.Dy() != 256 {
				t.Fatalf("image is %v, want 256x256", b)
			}
			bmp, err := gozxing.NewBinaryBitmapFromImage(img)
			if err != nil {
				t.Fatal(err)
			}
			res, err := qrcode.NewQRCodeReader().Decode(bmp, map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_PURE_BARCODE: true})
			if err != nil {
				t.Fatalf("decoding QR code: %v", err)
			}
			if res.GetText() != uri {
				t.Fatalf("QR code holds\n%s\nwant\n%s", res.GetText(), uri)
			}
		})
	}

	for _, size := range []int{0, MinQRSize - 1, MaxQRSize + 1} {
		if _, err := QRPNG(URI(c, "Example", "alice", secret), size); err == nil {
			t.Errorf("size %d accepted", size)
		}
	}
	if _, err := QRPNG("https://example.com/%zz", 256); err == nil {
		t.Error("malformed URI accepted")
	}
}
