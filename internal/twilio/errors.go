package twilio

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// ErrUnavailable means Twilio could not be reached or could not serve the
// request: 5xx answers, Twilio's own throttling, timeouts, connection errors
// and answers that cannot be read. The API answers 502 sms_provider_unavailable.
var ErrUnavailable = errors.New("twilio: verify service unavailable")

// Kind classifies a failure by what the API should answer.
type Kind int

const (
	// KindOther is anything the API cannot blame on the user or on an outage,
	// such as bad credentials or an unknown service: a server-side fault.
	KindOther Kind = iota
	// KindInvalidPhone is Twilio error 60200 (invalid parameter): 422 invalid_phone.
	KindInvalidPhone
	// KindTooManyAttempts is 60202 (max check attempts) or 60203 (max send
	// attempts): 429.
	KindTooManyAttempts
	// KindExpired is 20404: the verification expired, was already approved or
	// never existed. 401.
	KindExpired
	// KindUnavailable is an outage: see ErrUnavailable. 502.
	KindUnavailable
	// KindNotSupported is a number Twilio will not send to: 60410, Fraud
	// Guard blocked its prefix as suspected SMS pumping, or 60605, Geo
	// Permissions do not allow its country. 422 phone_not_supported.
	KindNotSupported
	// KindConcurrent is 60212: too many concurrent requests for the phone.
	// 429.
	KindConcurrent
)

func (k Kind) String() string {
	switch k {
	case KindInvalidPhone:
		return "invalid_phone"
	case KindTooManyAttempts:
		return "too_many_attempts"
	case KindExpired:
		return "expired"
	case KindUnavailable:
		return "unavailable"
	case KindNotSupported:
		return "not_supported"
	case KindConcurrent:
		return "concurrent"
	default:
		return "other"
	}
}

// Twilio error codes the API tells apart.
const (
	CodeNotFound         = 20404
	CodeTooManyRequests  = 20429
	CodeInvalidParameter = 60200
	CodeMaxCheckAttempts = 60202
	CodeMaxSendAttempts  = 60203
	// https://www.twilio.com/docs/api/errors/60212
	CodeTooManyConcurrent = 60212
	// https://www.twilio.com/docs/api/errors/60410
	CodeFraudGuardBlocked = 60410
	// https://www.twilio.com/docs/api/errors/60605
	CodeGeoPermission = 60605
)

// Error is an error answer from Twilio. Message is Twilio's text with the
// phone number and code of the request masked out.
type Error struct {
	Status   int    // HTTP status of the answer
	Code     int    // Twilio error code, 0 when the body carried none
	Message  string // Twilio's message, masked
	MoreInfo string // link to Twilio's description of Code
}

func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("twilio: HTTP %d, error %d: %s", e.Status, e.Code, msg)
}

// Kind classifies the answer: Twilio's code first, then the HTTP status.
func (e *Error) Kind() Kind {
	switch e.Code {
	case CodeInvalidParameter:
		return KindInvalidPhone
	case CodeMaxCheckAttempts, CodeMaxSendAttempts:
		return KindTooManyAttempts
	case CodeNotFound:
		return KindExpired
	case CodeFraudGuardBlocked, CodeGeoPermission:
		return KindNotSupported
	case CodeTooManyConcurrent:
		return KindConcurrent
	}
	// Twilio throttling our account (20429) is not the user's doing, so it is
	// an outage rather than too many attempts.
	if e.Status >= 500 || e.Status == http.StatusTooManyRequests || e.Code == CodeTooManyRequests {
		return KindUnavailable
	}
	return KindOther
}

// Is lets errors.Is(err, ErrUnavailable) hold for outage answers.
func (e *Error) Is(target error) bool {
	return target == ErrUnavailable && e.Kind() == KindUnavailable
}

// KindOf classifies any error returned by Client. It returns KindOther for
// errors that did not come from Client, and for nil.
func KindOf(err error) Kind {
	var te *Error
	if errors.As(err, &te) {
		return te.Kind()
	}
	if errors.Is(err, ErrUnavailable) {
		return KindUnavailable
	}
	return KindOther
}

// MaskPhone hides all but the first digit and the last four of a phone
// number, so logs can tell numbers apart without holding them:
// "+15555550100" becomes "+1******0100". Short inputs are masked entirely.
func MaskPhone(phone string) string {
	prefix, digits := "", phone
	if strings.HasPrefix(phone, "+") {
		prefix, digits = "+", phone[1:]
	}
	const keepHead, keepTail = 1, 4
	if len(digits) < keepHead+keepTail+3 {
		return strings.Repeat("*", len(phone))
	}
	return prefix + digits[:keepHead] + strings.Repeat("*", len(digits)-keepHead-keepTail) + digits[len(digits)-keepTail:]
}

// maskSecrets removes the request's phone number and code from text that
// came back from Twilio, which may quote them.
func maskSecrets(s, phone, code string) string {
	if phone != "" {
		masked := MaskPhone(phone)
		s = strings.ReplaceAll(s, phone, masked)
		if bare := strings.TrimPrefix(phone, "+"); bare != "" && bare != phone {
			s = strings.ReplaceAll(s, bare, strings.TrimPrefix(masked, "+"))
		}
	}
	if code != "" {
		s = strings.ReplaceAll(s, code, strings.Repeat("*", len(code)))
	}
	return s
}
