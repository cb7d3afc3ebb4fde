package email

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"os"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode"
)

// Built-in templates. They say what the message is for, when the code or
// link expires and what to do when the sign-in was not yours. Each serves
// both modes: .Link is set in link mode, .Code in code mode.
const (
	defaultSubject = `{{if .Link}}Your sign-in link for {{.Site}}{{else}}Your sign-in code for {{.Site}}{{end}}`

	defaultText = `{{if .Link}}To sign in to {{.Site}}, open this link and confirm:

    {{.Link}}

It works once and expires in {{.ExpiresIn}}. You may open it on another
device: the browser where you started signing in then continues by itself.

If you did not try to sign in, ignore this email: nobody can sign in
without the link. Do not forward it.
{{else}}Your sign-in code for {{.Site}} is:

    {{.Code}}

Enter it on the sign-in page. It expires in {{.ExpiresIn}}.

If you did not try to sign in, ignore this email: nobody can sign in
without the code. Do not share it with anyone.
{{end}}`

	defaultHTML = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{if .Link}}Your sign-in link{{else}}Your sign-in code{{end}} for {{.Site}}</title>
</head>
<body style="margin:0;padding:24px;font-family:-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif;color:#1f2328;background:#ffffff;">
{{- if .Link}}
<p style="font-size:16px;margin:0 0 16px;">To sign in to <strong>{{.Site}}</strong>, open this link and confirm:</p>
<p style="margin:0 0 16px;"><a href="{{.Link}}" style="display:inline-block;padding:12px 20px;border-radius:6px;background:#0969da;color:#ffffff;font-size:16px;font-weight:bold;text-decoration:none;">Sign in to {{.Site}}</a></p>
<p style="font-size:14px;color:#57606a;margin:0 0 16px;word-break:break-all;">Or copy this address into your browser: {{.Link}}</p>
<p style="font-size:16px;margin:0 0 16px;">It works once and expires in {{.ExpiresIn}}. You may open it on another device: the browser where you started signing in then continues by itself.</p>
<p style="font-size:14px;color:#57606a;margin:0;">If you did not try to sign in, ignore this email: nobody can sign in without the link. Do not forward it.</p>
{{- else}}
<p style="font-size:16px;margin:0 0 16px;">Your sign-in code for <strong>{{.Site}}</strong> is:</p>
<p style="font-size:32px;font-weight:bold;letter-spacing:6px;font-family:Menlo,Consolas,'Courier New',monospace;margin:0 0 16px;">{{.Code}}</p>
<p style="font-size:16px;margin:0 0 16px;">Enter it on the sign-in page. It expires in {{.ExpiresIn}}.</p>
<p style="font-size:14px;color:#57606a;margin:0;">If you did not try to sign in, ignore this email: nobody can sign in without the code. Do not share it with anyone.</p>
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
	// ExpiresIn is the code's lifetime in words, e.g. "10 minutes".
	ExpiresIn string
}

// templates are the parsed templates of a Config.
type templates struct {
	subject *texttemplate.Template
	text    *texttemplate.Template
	html    *htmltemplate.Template
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

// humanDuration writes d the way the message says it: "10 minutes",
// "1 minute", "90 seconds", "1 hour".
func humanDuration(d time.Duration) string {
	d = d.Round(time.Second)
	plural := func(n int64, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return fmt.Sprintf("%d %ss", n, unit)
	}
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int64(d/time.Hour), "hour")
	case d >= time.Minute && d%time.Minute == 0:
		return plural(int64(d/time.Minute), "minute")
	default:
		return plural(int64(d/time.Second), "second")
	}
}
