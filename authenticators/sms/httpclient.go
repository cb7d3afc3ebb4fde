package sms

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
)

// DefaultTimeout bounds one request to an HTTP provider (twilio,
// webhook): connecting, sending and reading the answer.
const DefaultTimeout = 10 * time.Second

// maxAnswer bounds how much of a provider's answer is read.
const maxAnswer = 64 << 10

// maxDetail bounds how much of an answer an error quotes.
const maxDetail = 200

// httpClient is the HTTP side of a provider: its own connection pool, no
// redirects (a provider that redirects is misconfigured, and following
// would resend the code elsewhere), and a timeout per request.
type httpClient struct {
	client    *http.Client
	transport *http.Transport
	timeout   time.Duration
	safeURL   string // the endpoint without user info, query or fragment, for errors and logs
}

func newHTTPClient(endpoint *url.URL, timeout time.Duration) *httpClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &httpClient{
		client: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		transport: tr,
		timeout:   timeout,
		safeURL:   safeURL(endpoint),
	}
}

// do sends req within the timeout and returns the status code and at most
// maxAnswer bytes of the answer. Its errors name the endpoint by safeURL.
func (h *httpClient) do(ctx context.Context, req *http.Request) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	resp, err := h.client.Do(req.WithContext(ctx))
	if err != nil {
		return 0, nil, h.wrap(ctx, req.Method, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return 0, nil, h.wrap(ctx, "reading answer of "+req.Method, err)
	}
	return resp.StatusCode, body, nil
}

// wrap replaces the URL in a *url.Error, which may hold credentials in its
// user info or query, with safeURL, and says so when the timeout expired.
func (h *httpClient) wrap(ctx context.Context, op string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s %s: no answer within %s: %w", op, h.safeURL, h.timeout, err)
	}
	return fmt.Errorf("%s %s: %w", op, h.safeURL, err)
}

// close closes the idle connections.
func (h *httpClient) close() {
	if h != nil {
		h.transport.CloseIdleConnections()
	}
}

// parseEndpoint parses an http or https URL with a host and no fragment.
func parseEndpoint(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, errors.New("is empty")
	}
	if strings.IndexFunc(raw, unicode.IsControl) >= 0 {
		return nil, errors.New("contains control characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, errors.New("is not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("scheme must be http or https, not %q", u.Scheme)
	}
	if u.Host == "" || u.Opaque != "" {
		return nil, errors.New("has no host")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return nil, errors.New("must not have a fragment")
	}
	return u, nil
}

// isLoopback reports whether u points at this machine.
func isLoopback(u *url.URL) bool {
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// safeURL returns u without user info, query or fragment.
func safeURL(u *url.URL) string {
	s := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path, RawPath: u.RawPath}
	return s.String()
}

// oneLineDetail turns part of an answer body into a short single line for
// an error: control characters become spaces, invalid UTF-8 is dropped,
// and the result is cut at maxDetail characters.
func oneLineDetail(b []byte) string {
	s := strings.ToValidUTF8(string(b), "")
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool {
		return unicode.IsControl(r) || unicode.IsSpace(r)
	}), " ")
	if r := []rune(s); len(r) > maxDetail {
		s = string(r[:maxDetail]) + "..."
	}
	return s
}
