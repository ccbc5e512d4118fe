// Package twilio is a small client for Twilio Verify v2: it starts an SMS
// verification for a phone number and checks the code the user typed.
//
// Errors never carry the phone number, the code or the auth token: they end
// up in logs.
package twilio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

const (
	// DefaultBaseURL is Twilio's Verify API.
	DefaultBaseURL = "https://verify.twilio.com"
	// DefaultTimeout bounds each call when Client.HTTP sets no timeout of its own.
	DefaultTimeout = 10 * time.Second

	// StatusApproved is the only verification status that means success.
	StatusApproved = "approved"
	// StatusPending is what a wrong code leaves the verification in.
	StatusPending = "pending"
)

// Limits on what is read from Twilio, so a broken or hostile answer cannot
// exhaust memory or flood the logs.
const (
	maxBodyBytes   = 64 << 10
	maxMessageLen  = 256
	truncateMarker = "…"
)

var defaultHTTP = &http.Client{Timeout: DefaultTimeout}

// Client calls Twilio Verify v2. The zero value of optional fields picks the
// default; a Client is safe for concurrent use and is not modified by calls.
type Client struct {
	BaseURL    string // DefaultBaseURL when empty
	AccountSID string
	AuthToken  string
	ServiceSID string       // the Verify service, VA…
	HTTP       *http.Client // a client with DefaultTimeout when nil
}

// StartVerification sends a code by SMS to phoneE164.
func (c *Client) StartVerification(ctx context.Context, phoneE164 string) error {
	form := url.Values{"To": {phoneE164}, "Channel": {"sms"}}
	_, err := c.post(ctx, "Verifications", form, phoneE164, "")
	return err
}

// CheckVerification reports whether code is the one sent to phoneE164.
// A wrong code is (false, nil): Twilio leaves the verification pending.
func (c *Client) CheckVerification(ctx context.Context, phoneE164, code string) (approved bool, err error) {
	form := url.Values{"To": {phoneE164}, "Code": {code}}
	v, err := c.post(ctx, "VerificationCheck", form, phoneE164, code)
	if err != nil {
		return false, err
	}
	return v.Status == StatusApproved, nil
}

func (c *Client) post(ctx context.Context, resource string, form url.Values, phone, code string) (verification, error) {
	if c.AccountSID == "" || c.AuthToken == "" || c.ServiceSID == "" {
		return verification{}, errors.New("twilio: AccountSID, AuthToken and ServiceSID are required")
	}
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	endpoint := strings.TrimRight(base, "/") + "/v2/Services/" + url.PathEscape(c.ServiceSID) + "/" + resource

	hc := c.HTTP
	if hc == nil {
		hc = defaultHTTP
	} else if hc.Timeout == 0 {
		// A call to Twilio is never left unbounded.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		// The form is not part of the URL, so this message holds no secret.
		return verification{}, fmt.Errorf("twilio: building %s request: %w", resource, err)
	}
	req.SetBasicAuth(c.AccountSID, c.AuthToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, err := hc.Do(req)
	if err != nil {
		// *url.Error names the endpoint only; credentials travel in a header
		// and the phone number in the body.
		return verification{}, fmt.Errorf("%w: %s: %w", ErrUnavailable, resource, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes))
	if err != nil {
		return verification{}, fmt.Errorf("%w: %s: reading answer: %w", ErrUnavailable, resource, err)
	}

	v, err := decodeResponse(resp.StatusCode, body)
	var te *Error
	if errors.As(err, &te) {
		te.Message = maskSecrets(te.Message, phone, code)
		te.MoreInfo = maskSecrets(te.MoreInfo, phone, code)
	}
	return v, err
}

// verification holds the fields used from Twilio's verification and
// verification_check resources.
type verification struct {
	SID    string `json:"sid"`
	Status string `json:"status"`
}

// errorBody is Twilio's error answer.
type errorBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// decodeResponse turns Twilio's answer into a verification or an error. Any
// non-2xx status gives an *Error; a 2xx whose body is not a JSON object gives
// an error wrapping ErrUnavailable.
func decodeResponse(status int, body []byte) (verification, error) {
	if status >= 200 && status < 300 {
		var v verification
		if err := json.Unmarshal(body, &v); err != nil {
			// The decoder's message may quote the body, which may quote the phone.
			return verification{}, fmt.Errorf("%w: unreadable answer (HTTP %d, %d bytes)", ErrUnavailable, status, len(body))
		}
		return v, nil
	}

	var eb errorBody
	if err := json.Unmarshal(bytes.TrimSpace(body), &eb); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			// Not Twilio's JSON (a proxy's HTML page, say): keep the status only.
			eb = errorBody{}
		}
	}
	return verification{}, &Error{
		Status:   status,
		Code:     eb.Code,
		Message:  clean(eb.Message),
		MoreInfo: clean(eb.MoreInfo),
	}
}

// clean makes text from Twilio safe for a one-line log: no control
// characters, valid UTF-8, bounded length.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxMessageLen {
		cut := maxMessageLen
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + truncateMarker
	}
	return s
}
