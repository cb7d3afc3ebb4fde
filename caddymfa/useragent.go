package caddymfa

import (
	"strings"

	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

// describeUserAgent names the browser and the system of a User-Agent
// header in words a person recognises ("Firefox", "Windows"), for the
// account page and the admin API; "" for what it does not recognise. It
// only reads the well-known product tokens, in the order that tells the
// browsers apart (Edge and Opera also say Chrome, Chrome also says
// Safari), and never fails: the header is written by the client.
func describeUserAgent(ua string) (browser, system string) {
	has := func(token string) bool { return strings.Contains(ua, token) }
	for _, b := range uaBrowsers {
		if has(b.token) {
			browser = b.name
			break
		}
	}
	if browser == "" && has("Safari/") && has("Version/") {
		browser = "Safari"
	}
	for _, s := range uaSystems {
		if has(s.token) {
			system = s.name
			break
		}
	}
	return browser, system
}

// uaBrowsers are browser tokens, most specific first.
var uaBrowsers = []struct{ token, name string }{
	{"Edg/", "Edge"},
	{"EdgiOS/", "Edge"},
	{"EdgA/", "Edge"},
	{"OPR/", "Opera"},
	{"SamsungBrowser/", "Samsung Internet"},
	{"Vivaldi/", "Vivaldi"},
	{"YaBrowser/", "Yandex Browser"},
	{"Firefox/", "Firefox"},
	{"FxiOS/", "Firefox"},
	{"CriOS/", "Chrome"},
	{"HeadlessChrome/", "Chrome"},
	{"Chromium/", "Chromium"},
	{"Chrome/", "Chrome"},
	{"curl/", "curl"},
	{"Wget/", "Wget"},
	{"Go-http-client/", "Go HTTP client"},
	{"python-requests/", "Python requests"},
}

// uaSystems are system tokens, most specific first (iOS and Android say
// "like Mac OS X" and "Linux").
var uaSystems = []struct{ token, name string }{
	{"iPhone", "iOS"},
	{"iPad", "iPadOS"},
	{"Android", "Android"},
	{"CrOS", "ChromeOS"},
	{"Windows", "Windows"},
	{"Macintosh", "macOS"},
	{"Mac OS X", "macOS"},
	{"Linux", "Linux"},
	{"FreeBSD", "FreeBSD"},
	{"OpenBSD", "OpenBSD"},
}

// deviceName is a browser and system in words: "Firefox on Windows",
// "Chrome", "An unknown browser".
func deviceName(ua string) string {
	b, s := describeUserAgent(ua)
	return deviceNameIn(i18n.Builtin().English(), b, s)
}

// deviceNameIn is browser b on system s in words of l.
func deviceNameIn(l *i18n.Lang, b, s string) string {
	switch {
	case b != "" && s != "":
		return l.T("account.browser_on", "browser", b, "system", s)
	case b != "":
		return b
	case s != "":
		return l.T("account.a_browser_on", "system", s)
	}
	return l.T("account.unknown_browser")
}
