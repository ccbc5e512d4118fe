package errorreport

import (
	"regexp"
	"strings"

	"github.com/getsentry/sentry-go"

	"github.com/soulapp/soul/internal/phone"
)

// Headers that may go to Sentry; every other one (Authorization, Cookie,
// X-Forwarded-For...) is dropped.
var allowedHeaders = map[string]bool{
	"user-agent":   true,
	"content-type": true,
	"accept":       true,
}

// Tags this package sets from IDs it generated itself, kept as they are.
var ownTags = map[string]bool{"trace_id": true, "error_id": true, "status": true}

var (
	// key=value and "key": "value" pairs whose value is a secret.
	secretPair = regexp.MustCompile(`(?i)((?:access_token|refresh_token|id_token|token|code|otp|password|passwd|secret|api_key|apikey|authorization|auth_token|sid)["']?\s*[:=]\s*["']?)([^\s"'&,;}]+)`)
	// Bearer and Basic credentials.
	authScheme = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+`)
	// JWTs (access tokens).
	jwt = regexp.MustCompile(`eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*`)
	// Long opaque strings: refresh tokens, keys, hashes.
	opaque = regexp.MustCompile(`[A-Za-z0-9_-]{32,}`)
	// Phone numbers, with or without the leading plus and separators.
	phoneLike = regexp.MustCompile(`\+?\d[\d ().-]{6,}\d`)
	// A standalone six-digit run: an OTP code.
	otpCode = regexp.MustCompile(`\b\d{6}\b`)
)

// ScrubText removes secrets and personal data from free text.
func ScrubText(s string) string {
	if s == "" {
		return s
	}
	s = jwt.ReplaceAllString(s, "[token]")
	s = authScheme.ReplaceAllString(s, "$1 [redacted]")
	s = secretPair.ReplaceAllString(s, "${1}[redacted]")
	s = phoneLike.ReplaceAllStringFunc(s, maskPhone)
	s = opaque.ReplaceAllString(s, "[redacted]")
	s = otpCode.ReplaceAllString(s, "[code]")
	return s
}

// maskPhone masks a number the way the logs do; a run of digits too short
// to be a phone number (a port, a count) is left alone.
func maskPhone(m string) string {
	var b strings.Builder
	b.WriteByte('+')
	for _, c := range m {
		if c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	digits := b.Len() - 1
	if digits < 8 || digits > 15 {
		return m
	}
	return phone.Mask(b.String())
}

// Scrub is the client's BeforeSend: it runs on every event, including any
// a future integration adds, whatever built it.
func Scrub(e *sentry.Event) *sentry.Event {
	if e == nil {
		return nil
	}
	if r := e.Request; r != nil {
		r.Data = ""
		r.QueryString = ""
		r.Cookies = ""
		r.Env = nil
		if i := strings.IndexAny(r.URL, "?#"); i >= 0 {
			r.URL = r.URL[:i]
		}
		r.URL = ScrubText(r.URL)
		for k, v := range r.Headers {
			if !allowedHeaders[strings.ToLower(k)] {
				delete(r.Headers, k)
				continue
			}
			r.Headers[k] = ScrubText(v)
		}
	}
	e.User = sentry.User{ID: e.User.ID}
	e.Message = ScrubText(e.Message)
	e.Transaction = ScrubText(e.Transaction)
	for i := range e.Exception {
		e.Exception[i].Value = ScrubText(e.Exception[i].Value)
		if st := e.Exception[i].Stacktrace; st != nil {
			for j := range st.Frames {
				st.Frames[j].Vars = nil
				st.Frames[j].PreContext, st.Frames[j].ContextLine, st.Frames[j].PostContext = nil, "", nil
			}
		}
	}
	for _, b := range e.Breadcrumbs {
		b.Message = ScrubText(b.Message)
		b.Data = nil
	}
	for k, v := range e.Tags {
		if !ownTags[k] {
			e.Tags[k] = ScrubText(v)
		}
	}
	for k, v := range e.Extra {
		if s, ok := v.(string); ok {
			e.Extra[k] = ScrubText(s)
		} else {
			delete(e.Extra, k)
		}
	}
	return e
}
