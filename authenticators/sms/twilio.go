package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Twilio{})
}

// DefaultTwilioAPIURL is the base URL of Twilio's REST API.
const DefaultTwilioAPIURL = "https://api.twilio.com"

var (
	accountSIDPattern = regexp.MustCompile(`^AC[0-9a-fA-F]{32}$`)
	serviceSIDPattern = regexp.MustCompile(`^MG[0-9a-fA-F]{32}$`)
	senderIDPattern   = regexp.MustCompile(`^[A-Za-z0-9 ]{1,11}$`)
	shortCodePattern  = regexp.MustCompile(`^[0-9]{3,8}$`)
)

// Twilio sends texts through Twilio's Programmable Messaging REST API: one
// POST to {api_url}/2010-04-01/Accounts/{account_sid}/Messages.json per
// text, with HTTP basic authentication (account SID and auth token) and
// the form fields To, Body and From or MessagingServiceSid. A 2xx answer
// with a message SID means Twilio accepted the text. Errors are classified
// by HTTP status (Twilio asks clients not to branch on its error codes,
// which it refines over time): 429 and 5xx are retried; other 4xx, such
// as 400 for an invalid or unsubscribed number (errors 21211, 21610) or
// 401 for wrong credentials (20003), are not. Twilio's error code and
// message go to the delivery log with the numbers masked; the auth token
// and the code never do.
type Twilio struct {
	// AccountSID is the account SID, "AC" and 32 hex digits. Placeholders
	// such as {env.TWILIO_ACCOUNT_SID} are resolved at provision.
	// Required.
	AccountSID string `json:"account_sid,omitempty"`
	// AuthToken is the account's auth token. Placeholders such as
	// {env.TWILIO_AUTH_TOKEN} are resolved at provision. Required.
	AuthToken string `json:"auth_token,omitempty"`
	// From is the sender: a Twilio number in E.164 form ("+12015550123"),
	// a short code, or an alphanumeric sender ID where the destination
	// country allows one. Placeholders are resolved at provision. Exactly
	// one of from and messaging_service_sid is required.
	From string `json:"from,omitempty"`
	// MessagingServiceSID is the SID of a Messaging Service, "MG" and 32
	// hex digits, which picks the sender itself. Placeholders are resolved
	// at provision.
	MessagingServiceSID string `json:"messaging_service_sid,omitempty"`
	// APIURL is the base URL of the API, for regional endpoints and tests.
	// Plain http is allowed only to this machine. Default:
	// https://api.twilio.com.
	APIURL string `json:"api_url,omitempty"`
	// Timeout bounds one request. Default: 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	logger   *zap.Logger
	sid      string
	token    string
	from     string
	service  string
	endpoint string
	apiErr   error // a bad api_url, reported by Validate
	http     *httpClient
}

// CaddyModule returns the Caddy module information.
func (Twilio) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  ProviderNamespace + ".twilio",
		New: func() caddy.Module { return new(Twilio) },
	}
}

// Provision resolves placeholders, applies defaults and builds the
// endpoint and the HTTP client.
func (tw *Twilio) Provision(ctx caddy.Context) error {
	tw.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	tw.sid = strings.TrimSpace(repl.ReplaceKnown(tw.AccountSID, ""))
	tw.token = strings.TrimSpace(repl.ReplaceKnown(tw.AuthToken, ""))
	tw.from = strings.TrimSpace(repl.ReplaceKnown(tw.From, ""))
	tw.service = strings.TrimSpace(repl.ReplaceKnown(tw.MessagingServiceSID, ""))
	apiURL := repl.ReplaceKnown(tw.APIURL, "")
	if apiURL == "" {
		apiURL = DefaultTwilioAPIURL
	}
	timeout := time.Duration(tw.Timeout)
	if timeout == 0 {
		timeout = DefaultTimeout
	}

	base, err := parseEndpoint(apiURL)
	switch {
	case err != nil:
		tw.apiErr = fmt.Errorf("twilio: api_url %w", err)
	case base.Scheme == "http" && !isLoopback(base):
		tw.apiErr = errors.New("twilio: api_url must use https: plain http would expose the auth token and the codes")
	case base.RawQuery != "" || base.User != nil:
		tw.apiErr = errors.New("twilio: api_url must not have a query or user info")
	}
	if tw.apiErr != nil {
		return nil // reported by Validate
	}
	endpoint := *base
	endpoint.Path = strings.TrimRight(base.Path, "/") + "/2010-04-01/Accounts/" + tw.sid + "/Messages.json"
	endpoint.RawPath = ""
	tw.endpoint = endpoint.String()
	tw.http = newHTTPClient(&endpoint, timeout)
	return nil
}

// Validate checks the resolved configuration.
func (tw *Twilio) Validate() error {
	if tw.apiErr != nil {
		return tw.apiErr
	}
	if !accountSIDPattern.MatchString(tw.sid) {
		return errors.New("twilio: account_sid must be AC and 32 hex digits (is its environment variable set?)")
	}
	if tw.token == "" {
		return errors.New("twilio: auth_token is empty (is its environment variable set?)")
	}
	switch {
	case tw.from == "" && tw.service == "":
		return errors.New("twilio: from or messaging_service_sid is required")
	case tw.from != "" && tw.service != "":
		return errors.New("twilio: from and messaging_service_sid are alternatives; give one")
	case tw.service != "" && !serviceSIDPattern.MatchString(tw.service):
		return errors.New("twilio: messaging_service_sid must be MG and 32 hex digits")
	case tw.from != "" && !validSender(tw.from):
		return fmt.Errorf("twilio: from %q is not an E.164 number, a short code or an alphanumeric sender ID", tw.from)
	}
	if tw.Timeout < 0 {
		return errors.New("twilio: timeout must not be negative")
	}
	return nil
}

// validSender reports whether s is a number in E.164 form, a short code,
// or an alphanumeric sender ID (at most 11 letters, digits and spaces, at
// least one letter).
func validSender(s string) bool {
	if strings.HasPrefix(s, "+") {
		return isE164(s)
	}
	if shortCodePattern.MatchString(s) {
		return true
	}
	return senderIDPattern.MatchString(s) && strings.ContainsFunc(s, func(r rune) bool {
		return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z'
	})
}

// Cleanup closes idle connections.
func (tw *Twilio) Cleanup() error {
	tw.http.close()
	return nil
}

// twilioAnswer is the part of Twilio's answers the provider reads: a
// Message resource on success, an error object otherwise.
type twilioAnswer struct {
	// Message resource
	SID          string      `json:"sid"`
	Status       any         `json:"status"` // a string on success, a number in errors
	ErrorCode    json.Number `json:"error_code"`
	ErrorMessage string      `json:"error_message"`
	// error object
	Code     json.Number `json:"code"`
	Message  string      `json:"message"`
	MoreInfo string      `json:"more_info"`
}

// Send posts one text to the Messages resource.
func (tw *Twilio) Send(ctx context.Context, t Text) error {
	if tw.http == nil {
		return Permanent(errors.New("twilio: provider is not provisioned"))
	}
	form := url.Values{"To": {t.To}, "Body": {t.Body}}
	if tw.service != "" {
		form.Set("MessagingServiceSid", tw.service)
	} else {
		form.Set("From", tw.from)
	}
	req, err := http.NewRequest(http.MethodPost, tw.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return Permanent(fmt.Errorf("twilio: building request: %w", err))
	}
	req.SetBasicAuth(tw.sid, tw.token)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)

	status, body, err := tw.http.do(ctx, req)
	if err != nil {
		return fmt.Errorf("twilio: %w", err)
	}
	var ans twilioAnswer
	jsonErr := json.Unmarshal(body, &ans)

	if status < 200 || status > 299 {
		se := &StatusError{Provider: "twilio", StatusCode: status}
		if jsonErr == nil && (ans.Code != "" || ans.Message != "") {
			se.Code = ans.Code.String()
			se.Message = oneLineDetail([]byte(ans.Message))
			if ans.MoreInfo != "" {
				se.Message += " (" + oneLineDetail([]byte(ans.MoreInfo)) + ")"
			}
		} else {
			se.Message = oneLineDetail(body)
		}
		return se
	}

	// Twilio took the request; a retry could send the text twice, so
	// whatever is wrong with the answer now is permanent.
	if jsonErr != nil || ans.SID == "" {
		return Permanent(fmt.Errorf("twilio: HTTP %d answer without a message sid: %s", status, oneLineDetail(body)))
	}
	msgStatus, _ := ans.Status.(string)
	switch msgStatus {
	case "failed", "undelivered", "canceled":
		return Permanent(&StatusError{
			Provider:   "twilio",
			StatusCode: status,
			Code:       ans.ErrorCode.String(),
			Message:    "message " + msgStatus + ": " + oneLineDetail([]byte(ans.ErrorMessage)),
		})
	}
	if ce := tw.logger.Check(zap.DebugLevel, "twilio accepted the message"); ce != nil {
		ce.Write(zap.String("sid", oneLineDetail([]byte(ans.SID))), zap.String("status", oneLineDetail([]byte(msgStatus))), zap.String("to", Mask(t.To)))
	}
	return nil
}

// userAgent identifies the requests of the HTTP providers.
const userAgent = "caddy-mfa"

// Interface guards
var (
	_ caddy.Provisioner  = (*Twilio)(nil)
	_ caddy.Validator    = (*Twilio)(nil)
	_ caddy.CleanerUpper = (*Twilio)(nil)
	_ Provider           = (*Twilio)(nil)
)
