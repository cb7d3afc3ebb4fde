package caddymfa

import (
	"context"
	"net/http"
	"strings"
	"sync"

	"github.com/caddymfa/caddy-mfa/authenticators/sms"
	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

// languageCookie keeps the language a user picked with the switcher. It
// is a preference, not a credential: readable by nothing but the pages,
// and any value the catalog does not have is ignored.
const languageCookie = "mfa_lang"

// languageCookieAge is how long the picked language is remembered.
const languageCookieAge = 365 * 24 * 60 * 60

// englishIndex maps the English text of each built-in message ("msg.*")
// to its key. Code says a message in English, as the page shows it
// without a translation; the index finds its key to say it in the
// user's language.
var englishIndex = sync.OnceValue(func() map[string]string {
	en := i18n.Builtin().English()
	idx := make(map[string]string)
	for _, key := range en.Keys() {
		if strings.HasPrefix(key, "msg.") {
			idx[en.Text(key, 0)] = key
		}
	}
	return idx
})

// requestLang is the language of the user of r: the one picked with the
// switcher, else the best match of Accept-Language, else English.
func (pg *pages) requestLang(r *http.Request) *i18n.Lang {
	return pg.catalog().Match(languageChoice(r), r.Header.Get("Accept-Language"))
}

// languageChoice is the language picked with the switcher (the value of
// its cookie), or "". Most requests carry no such cookie: a scan for its
// name spares them r.Cookie, which parses every cookie of the request
// into new values, and a page asks for the language several times.
func languageChoice(r *http.Request) string {
	found := false
	for _, line := range r.Header["Cookie"] {
		if strings.Contains(line, languageCookie) {
			found = true
			break
		}
	}
	if !found {
		return ""
	}
	if c, err := r.Cookie(languageCookie); err == nil {
		return c.Value
	}
	return ""
}

// userLang is the language of a message to the user of r.
type userLang struct {
	lang *i18n.Lang
	// pref is what picks among the operator's own texts of a text
	// message (sms messages): the language picked with the switcher,
	// else Accept-Language, which may name languages the catalog lacks.
	pref string
}

func (pg *pages) userLang(r *http.Request) userLang {
	ul := userLang{lang: pg.requestLang(r), pref: r.Header.Get("Accept-Language")}
	if choice := languageChoice(r); choice != "" && ul.lang.Tag() == choice {
		ul.pref = choice
	}
	return ul
}

// context returns ctx carrying the language to the channels.
func (ul userLang) context(ctx context.Context) context.Context {
	if ul.lang != nil {
		ctx = i18n.WithLang(ctx, ul.lang)
	}
	return sms.WithLanguage(ctx, ul.pref)
}

func (pg *pages) catalog() *i18n.Catalog {
	if pg.cat == nil {
		return i18n.Builtin()
	}
	return pg.cat
}

// localize says v's message in l: a message the code wrote in English
// becomes its translation, with its arguments (whose values may be keys
// themselves, such as "thing.phone") filled in. A text the catalog does
// not know stays as it is.
func localize(l *i18n.Lang, msg string, args []string) string {
	key, ok := englishIndex()[msg]
	if !ok {
		return msg
	}
	out := make([]string, len(args))
	for i, a := range args {
		if i%2 == 1 && l.Has(a) {
			a = l.T(a)
		}
		out[i] = a
	}
	return l.T(key, out...)
}

// serveLanguage answers POST /language, the language switcher: it
// remembers the picked language in a cookie and goes back to the page
// the form was on (303, so a reload does not post again). Setting a
// preference needs no CSRF token, but a cross-site form is refused
// (SECURITY.md G35).
func (h *Handler) serveLanguage(w http.ResponseWriter, r *http.Request) error {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return h.backToFlow(w, r)
	}
	if r.Method != http.MethodPost {
		return methodNotAllowed(w, "POST")
	}
	if !sameOrigin(r, h.baseURL) {
		return h.pages.render(w, r, errorView(http.StatusForbidden, errCodeCSRF, "This form was sent from another site."))
	}
	f, err := readForm(r)
	if err != nil {
		return h.pages.render(w, r, errorView(http.StatusBadRequest, errCodeRequest, "The request could not be read."))
	}
	if l := h.pages.catalog().Lookup(f.Language); l != nil {
		http.SetCookie(w, &http.Cookie{
			Name: languageCookie, Value: l.Tag(), Path: "/", MaxAge: languageCookieAge,
			Secure: isHTTPS(r), HttpOnly: true, SameSite: http.SameSiteLaxMode,
		})
	}
	dest := h.PathPrefix + "/"
	// Back to the flow's own page or the signed-out page only, with its
	// query ("?method=totp"), never elsewhere (SECURITY.md F32).
	if ret := f.Return; (strings.HasPrefix(ret, dest+"?") || ret == h.PathPrefix+signedOutPath || strings.HasPrefix(ret, h.PathPrefix+signedOutPath+"?")) && len(ret) <= maxReturnURL &&
		strings.IndexFunc(ret, func(c rune) bool { return c < 0x20 || c >= 0x7f || c == '\\' }) < 0 {
		dest = ret
	}
	http.Redirect(w, r, dest, http.StatusSeeOther)
	return nil
}

// here is the address of the page r shows, for the language switcher to
// come back to: the page itself when it is a GET of the current step,
// else the current step.
func here(r *http.Request, prefix string) string {
	if r.Method == http.MethodGet && (r.URL.Path == prefix+"/" || r.URL.Path == prefix) {
		if r.URL.RawQuery != "" {
			return prefix + "/?" + r.URL.RawQuery
		}
	}
	if r.Method == http.MethodGet && r.URL.Path == prefix+signedOutPath {
		// The signed-out page stays itself: the sign-in would start a flow.
		if r.URL.RawQuery != "" {
			return prefix + signedOutPath + "?" + r.URL.RawQuery
		}
		return prefix + signedOutPath
	}
	return prefix + "/"
}
