package totp

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"strconv"
	"strings"

	"github.com/boombuler/barcode/qr"
	"github.com/pquerna/otp"
)

// QR code sizes QRPNG accepts, in pixels per side.
const (
	MinQRSize = 64
	MaxQRSize = 1024
)

// qrQuietZone is the white margin around a QR code, in modules (ISO/IEC
// 18004 asks for 4).
const qrQuietZone = 4

// URI returns the otpauth:// key URI an authenticator app reads from the
// QR code: label "issuer:account", then the secret, issuer, algorithm,
// digits and period of c. An empty issuer takes c.Issuer; with neither,
// the label is the account alone and there is no issuer parameter.
//
// Every byte of issuer and account outside the RFC 3986 unreserved set is
// percent-encoded, in the label and in the parameter alike (a space is
// %20, never "+"), so ':', '?', '&', '#', '%', '/', CR, LF and non-ASCII
// text cannot break the label apart or inject parameters. The caller
// takes issuer from the configuration or base_url, never from request
// headers.
func URI(c *Config, issuer, account, secret string) string {
	if issuer == "" {
		issuer = c.Issuer
	}
	digits := c.Digits
	if digits == 0 {
		digits = DefaultDigits
	}
	period := c.periodSeconds()
	alg := c.Algorithm
	if alg == "" {
		alg = DefaultAlgorithm
	}
	secret = strings.ToUpper(strings.TrimRight(strings.ReplaceAll(secret, " ", ""), "="))

	var b strings.Builder
	b.WriteString("otpauth://totp/")
	if issuer != "" {
		b.WriteString(escape(issuer))
		b.WriteByte(':')
	}
	b.WriteString(escape(account))
	b.WriteString("?secret=")
	b.WriteString(escape(secret))
	if issuer != "" {
		b.WriteString("&issuer=")
		b.WriteString(escape(issuer))
	}
	b.WriteString("&algorithm=")
	b.WriteString(escape(strings.ToUpper(alg)))
	b.WriteString("&digits=")
	b.WriteString(strconv.Itoa(digits))
	b.WriteString("&period=")
	b.WriteString(strconv.FormatUint(period, 10))
	return b.String()
}

// escape percent-encodes every byte outside the RFC 3986 unreserved set.
func escape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0x0f])
	}
	return b.String()
}

// QRPNG renders uri as a QR code (error correction level M) in a PNG of
// size by size pixels, MinQRSize to MaxQRSize. Pages embed it as a data
// URI, so the secret never leaves the response in a separate request.
func QRPNG(uri string, size int) ([]byte, error) {
	if size < MinQRSize || size > MaxQRSize {
		return nil, fmt.Errorf("totp: qr size %d outside %d..%d", size, MinQRSize, MaxQRSize)
	}
	if _, err := otp.NewKeyFromURL(uri); err != nil {
		return nil, fmt.Errorf("parsing otpauth uri: %w", err)
	}
	code, err := qr.Encode(uri, qr.M, qr.Auto)
	if err != nil {
		return nil, fmt.Errorf("encoding qr code: %w", err)
	}
	// Whole pixels per module and a quiet zone of 4 modules on each side:
	// cameras and decoders need both, and a fractional scale smears the
	// module edges.
	modules := code.Bounds().Dx()
	scale := size / (modules + 2*qrQuietZone)
	if scale < 1 {
		return nil, fmt.Errorf("totp: a %d-pixel image is too small for a %d-module qr code", size, modules)
	}
	img := image.NewGray(image.Rect(0, 0, size, size))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	offset := (size - modules*scale) / 2
	for y := range modules {
		for x := range modules {
			if code.At(x, y) != color.Black {
				continue
			}
			for dy := range scale {
				row := (offset+y*scale+dy)*img.Stride + offset + x*scale
				for dx := range scale {
					img.Pix[row+dx] = 0
				}
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encoding png: %w", err)
	}
	return buf.Bytes(), nil
}
