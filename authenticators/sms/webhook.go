package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
	"golang.org/x/net/http/httpguts"
)

func init() {
	caddy.RegisterModule(Webhook{})
}

// Body formats of the webhook provider.
const (
	FormatJSON = "json"
	FormatForm = "form"
)

// Default bodies of the webhook provider, by format.
const (
	DefaultWebhookJSONBody = `{"to":"{to}","message":"{message}"}`
	DefaultWebhookFormBody = `to={to}&message={message}`
)

// Webhook sends each text as an HTTP request to any gateway: a JSON or
// form body built from a template with the placeholders {to} (the number
// in E.164 form), {message} (the text) and {code} (the code alone, empty
// in notices). Each value is escaped for the format: as the content of a
// JSON string (so {to}, {message} and {code} must stand inside quotes in a
// JSON template) or form-encoded. The URL and headers are fixed, so codes
// never appear in URLs, which gateways and proxies log. A 2xx answer is
// success; 408, 429, 5xx, timeouts and connection failures are retried;
// other answers are permanent failures. Redirects are not followed.
type Webhook struct {
	// URL is the gateway's endpoint, http or https. Placeholders such as
	// {env.SMS_GATEWAY_URL} are resolved at provision. Required.
	URL string `json:"url,omitempty"`
	// Method is the HTTP method: POST, PUT or PATCH. Default: POST.
	Method string `json:"method,omitempty"`
	// Headers are sent with every request, e.g. {"Authorization": "Bearer
	// {env.SMS_GATEWAY_TOKEN}"}. Placeholders are resolved at provision.
	// Host, Content-Length, Transfer-Encoding and Connection cannot be set;
	// Content-Type defaults to the format's.
	Headers map[string]string `json:"headers,omitempty"`
	// Format is the body format: "json" (application/json) or "form"
	// (application/x-www-form-urlencoded). Default: json.
	Format string `json:"format,omitempty"`
	// Body is the body template; it must contain {to}, and {message} or
	// {code}. Other placeholders, such as {env.SMS_GATEWAY_KEY}, are
	// resolved at provision and not escaped. Default:
	// {"to":"{to}","message":"{message}"} for json, to={to}&message={message}
	// for form.
	Body string `json:"body,omitempty"`
	// Timeout bounds one request. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	logger  *zap.Logger
	url     *url.URL
	method  string
	headers http.Header
	format  string
	body    string
	err     error // a configuration error found at provision, reported by Validate
	http    *httpClient
}

// CaddyModule returns the Caddy module information.
func (Webhook) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  ProviderNamespace + ".webhook",
		New: func() caddy.Module { return new(Webhook) },
	}
}

// forbiddenHeaders are set by the HTTP client; the configuration must not.
var forbiddenHeaders = []string{"Host", "Content-Length", "Transfer-Encoding", "Connection"}

// Provision resolves placeholders, applies defaults and builds the HTTP
// client.
func (w *Webhook) Provision(ctx caddy.Context) error {
	w.logger = ctx.Logger()
	repl := caddy.NewReplacer()

	w.method = strings.ToUpper(w.Method)
	if w.method == "" {
		w.method = http.MethodPost
	}
	w.format = w.Format
	if w.format == "" {
		w.format = FormatJSON
	}
	w.body = w.Body
	if w.body == "" {
		w.body = DefaultWebhookJSONBody
		if w.format == FormatForm {
			w.body = DefaultWebhookFormBody
		}
	}
	w.body = repl.ReplaceKnown(w.body, "")

	w.headers = make(http.Header, len(w.Headers)+1)
	for name, value := range w.Headers {
		name = repl.ReplaceKnown(name, "")
		value = repl.ReplaceKnown(value, "")
		if !httpguts.ValidHeaderFieldName(name) || !httpguts.ValidHeaderFieldValue(value) {
			w.err = fmt.Errorf("webhook: header %q: invalid name or value", name)
			return nil
		}
		name = textproto.CanonicalMIMEHeaderKey(name)
		if slices.Contains(forbiddenHeaders, name) {
			w.err = fmt.Errorf("webhook: header %s cannot be set", name)
			return nil
		}
		w.headers.Set(name, value)
	}
	if w.headers.Get("Content-Type") == "" {
		switch w.format {
		case FormatJSON:
			w.headers.Set("Content-Type", "application/json")
		case FormatForm:
			w.headers.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if w.headers.Get("User-Agent") == "" {
		w.headers.Set("User-Agent", userAgent)
	}

	u, err := parseEndpoint(repl.ReplaceKnown(w.URL, ""))
	if err != nil {
		w.err = fmt.Errorf("webhook: url %w", err)
		return nil
	}
	w.url = u
	timeout := time.Duration(w.Timeout)
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	w.http = newHTTPClient(u, timeout)
	if u.Scheme == "http" && !isLoopback(u) {
		w.logger.Warn("sms webhook uses plain http: codes can be read on the network path", zap.String("url", w.http.safeURL))
	}
	return nil
}

// Validate checks the resolved configuration, and renders the body
// template once with values full of quotes, ampersands and newlines to
// show that every placeholder is escaped where it stands.
func (w *Webhook) Validate() error {
	if w.err != nil {
		return w.err
	}
	switch w.method {
	case http.MethodPost, http.MethodPut, http.MethodPatch:
	default:
		return fmt.Errorf("webhook: method must be POST, PUT or PATCH, not %q", w.Method)
	}
	if w.Timeout < 0 {
		return errors.New("webhook: timeout must not be negative")
	}
	if !strings.Contains(w.body, "{to}") {
		return errors.New("webhook: body must contain {to}")
	}
	if !strings.Contains(w.body, "{message}") && !strings.Contains(w.body, "{code}") {
		return errors.New("webhook: body must contain {message} or {code}")
	}
	sample := Text{To: "+12015550123", Body: "a \"quoted\" & <tagged> {code}\r\nline=2;%s\\", Code: "012345"}
	b, err := w.render(sample)
	if err != nil {
		return err
	}
	switch w.format {
	case FormatJSON:
		if !json.Valid(b) {
			return errors.New("webhook: body is not valid JSON once filled in; put {to}, {message} and {code} inside quotes")
		}
	case FormatForm:
		if _, err := url.ParseQuery(string(b)); err != nil {
			return fmt.Errorf("webhook: body is not a valid form once filled in: %w", err)
		}
	}
	return nil
}

// render fills the body template with t, escaping each value for the
// format. The replacement is a single pass, so a value that contains a
// placeholder is not expanded again.
func (w *Webhook) render(t Text) ([]byte, error) {
	var esc func(string) string
	switch w.format {
	case FormatJSON:
		esc = jsonStringContent
	case FormatForm:
		esc = url.QueryEscape
	default:
		return nil, fmt.Errorf("webhook: format must be %s or %s, not %q", FormatJSON, FormatForm, w.format)
	}
	r := strings.NewReplacer("{to}", esc(t.To), "{message}", esc(t.Body), "{code}", esc(t.Code))
	return []byte(r.Replace(w.body)), nil
}

// jsonStringContent returns s encoded as the content of a JSON string,
// without the quotes.
func jsonStringContent(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	return string(out[1 : len(out)-1])
}

// Cleanup closes idle connections.
func (w *Webhook) Cleanup() error {
	w.http.close()
	return nil
}

// Send makes one request to the gateway.
func (w *Webhook) Send(ctx context.Context, t Text) error {
	if w.http == nil {
		return Permanent(errors.New("webhook: provider is not provisioned"))
	}
	body, err := w.render(t)
	if err != nil {
		return Permanent(err)
	}
	req, err := http.NewRequest(w.method, w.url.String(), bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("webhook: building request: %w", err))
	}
	req.Header = w.headers.Clone()

	status, answer, err := w.http.do(ctx, req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	if status < 200 || status > 299 {
		return &StatusError{Provider: "webhook", StatusCode: status, Message: oneLineDetail(answer)}
	}
	if ce := w.logger.Check(zap.DebugLevel, "sms webhook accepted the message"); ce != nil {
		ce.Write(zap.Int("status", status), zap.String("to", Mask(t.To)))
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner  = (*Webhook)(nil)
	_ caddy.Validator    = (*Webhook)(nil)
	_ caddy.CleanerUpper = (*Webhook)(nil)
	_ Provider           = (*Webhook)(nil)
)
