package email

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"os"
	"strings"
	texttemplate "text/template"
	"unicode"

	"github.com/caddymfa/caddy-mfa/internal/i18n"
)

// Built-in templates. They say what the message is for, when the code or
// link expires and what to do when the sign-in was not yours. Each serves
// both modes: .Link is set in link mode, .Code in code mode.
const (
	defaultSubject = `{{if .Link}}{{.T "email.link.subject"}}{{else}}{{.T "email.code.subject"}}{{end}}`

	defaultText = `{{if .Link}}{{.T "email.link.intro"}}

    {{.Link}}

{{.T "email.link.expires"}}

{{.T "email.link.ignore"}}
{{else}}{{.T "email.code.intro"}}

    {{.Code}}

{{.T "email.code.enter"}}

{{.T "email.code.ignore"}}
{{end}}`

	defaultHTML = `<!DOCTYPE html>
<html lang="{{.Lang}}" dir="{{.Dir}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{if .Link}}{{.T "email.link.subject"}}{{else}}{{.T "email.code.subject"}}{{end}}</title>
</head>
<body style="margin:0;padding:24px;font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2328;background:#ffffff;">
{{- if .Link}}
<p style="font-size:16px;margin:0 0 16px;">{{.T "email.link.intro"}}</p>
<p style="margin:0 0 16px;"><a href="{{.Link}}" style="display:inline-block;padding:12px 20px;border-radius:6px;background:#0969da;color:#ffffff;font-size:16px;font-weight:bold;text-decoration:none;">{{.T "email.link.button"}}</a></p>
<p style="font-size:14px;color:#57606a;margin:0 0 16px;word-break:break-all;">{{.T "email.link.copy"}} {{.Link}}</p>
<p style="font-size:16px;margin:0 0 16px;">{{.T "email.link.expires"}}</p>
<p style="font-size:14px;color:#57606a;margin:0;">{{.T "email.link.ignore"}}</p>
{{- else}}
<p style="font-size:16px;margin:0 0 16px;">{{.T "email.code.intro"}}</p>
<p style="font-size:32px;font-weight:bold;letter-spacing:6px;font-family:Menlo,Consolas,'Courier New',monospace;margin:0 0 16px;" dir="ltr">{{.Code}}</p>
<p style="font-size:16px;margin:0 0 16px;">{{.T "email.code.enter"}}</p>
<p style="font-size:14px;color:#57606a;margin:0;">{{.T "email.code.ignore"}}</p>
{{- end}}
</body>
</html>
`
)

// TemplateData is what the subject, text and HTML templates receive.
type TemplateData struct {
	// Code is the one-time code; empty in link mode.
	Code string
	// Link is the one-time link; empty in code mode.
	Link string
	// Site names the protected site.
	Site string
	// To is the masked destination, e.g. "j***@e***.com".
	To string
	// User is the canonical user name.
	User string
	// ExpiresIn is the code's lifetime in words, e.g. "10 minutes", in
	// the user's language.
	ExpiresIn string

	lang *i18n.Lang
}

// T is the message key of the built-in texts in the user's language, with
// {site} and {expires} filled in.
func (d TemplateData) T(key string) string {
	return d.language().T(key, "site", d.Site, "expires", d.ExpiresIn)
}

// Lang is the user's language tag ("de", "pt-BR").
func (d TemplateData) Lang() string { return d.language().Tag() }

// Dir is the writing direction of the user's language, "ltr" or "rtl".
func (d TemplateData) Dir() string { return d.language().Dir() }

func (d TemplateData) language() *i18n.Lang {
	if d.lang == nil {
		return i18n.Builtin().English()
	}
	return d.lang
}

// templates are the parsed templates of a Config.
type templates struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
	// prep holds code messages rendered ahead, when the templates allow
	// it (nil otherwise).
	prep *prepared
}

// loadTemplates parses the configured templates (reading the files) and
// executes them once with sample data, so that a template naming an
// unknown field fails at provision time rather than at the first sign-in.
func loadTemplates(t *Templates) (*templates, error) {
	subject, text, html := defaultSubject, defaultText, defaultHTML
	if t != nil {
		if t.Subject != "" {
			subject = t.Subject
		}
		if t.TextFile != "" {
			b, err := os.ReadFile(t.TextFile)
			if err != nil {
				return nil, fmt.Errorf("reading text template: %w", err)
			}
			text = string(b)
		}
		if t.HTMLFile != "" {
			b, err := os.ReadFile(t.HTMLFile)
			if err != nil {
				return nil, fmt.Errorf("reading html template: %w", err)
			}
			html = string(b)
		}
	}
	var (
		tp  templates
		err error
	)
	if tp.subject, err = texttemplate.New("subject").Option("missingkey=error").Parse(subject); err != nil {
		return nil, fmt.Errorf("parsing subject template: %w", err)
	}
	if tp.text, err = texttemplate.New("text").Option("missingkey=error").Parse(text); err != nil {
		return nil, fmt.Errorf("parsing text template: %w", err)
	}
	if tp.html, err = htmltemplate.New("html").Option("missingkey=error").Parse(html); err != nil {
		return nil, fmt.Errorf("parsing html template: %w", err)
	}
	tp.prep = newPrepared(&tp) // before html/template adds its escapers to the tree
	for _, sample := range []TemplateData{sampleData(false), sampleData(true)} {
		if _, _, _, err := tp.render(sample); err != nil {
			return nil, err
		}
	}
	return &tp, nil
}

// sampleData is what templates are tried with at provision: a code
// message, or a link message.
func sampleData(link bool) TemplateData {
	d := TemplateData{Site: "example.com", To: "j***@e***.com", User: "john", ExpiresIn: "10 minutes"}
	if link {
		d.Link = "https://example.com/.mfa/link?token=" + strings.Repeat("x", 70)
	} else {
		d.Code = "123456"
	}
	return d
}

// showLink reports an error unless both bodies show the link of a link
// message, so that link mode cannot send mail without one.
func (tp *templates) showLink() error {
	d := sampleData(true)
	_, text, html, err := tp.render(d)
	if err != nil {
		return err
	}
	switch {
	case !strings.Contains(text, d.Link):
		return errors.New("the text template does not show {{.Link}}")
	case !strings.Contains(html, d.Link):
		return errors.New("the html template does not show {{.Link}}")
	}
	return nil
}

// render executes the three templates with data (a TemplateData, or a
// noticeData for the notice templates). The subject is reduced to one line:
// control characters (CR, LF, tabs...) become spaces.
func (tp *templates) render(data any) (subject, text, html string, err error) {
	var b bytes.Buffer
	if err := tp.subject.Execute(&b, data); err != nil {
		return "", "", "", fmt.Errorf("executing subject template: %w", err)
	}
	subject = oneLine(b.String())
	b.Reset()
	if err := tp.text.Execute(&b, data); err != nil {
		return "", "", "", fmt.Errorf("executing text template: %w", err)
	}
	text = b.String()
	b.Reset()
	if err := tp.html.Execute(&b, data); err != nil {
		return "", "", "", fmt.Errorf("executing html template: %w", err)
	}
	html = b.String()
	return subject, text, html, nil
}

// oneLine replaces control characters with spaces and trims the result.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}
