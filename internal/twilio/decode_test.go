package twilio

import (
	"errors"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestDecodeResponse(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   string // verification status on success
		kind   Kind   // on failure
		code   int
		fails  bool
	}{
		{"approved", 200, `{"sid":"VEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","status":"approved","valid":true}`, "approved", 0, 0, false},
		{"pending", 200, `{"status":"pending","valid":false}`, "pending", 0, 0, false},
		{"created", 201, `{"status":"pending"}`, "pending", 0, 0, false},
		{"garbage 2xx", 200, `<html>`, "", KindUnavailable, 0, true},
		{"wrong type 2xx", 200, `{"status":7}`, "", KindUnavailable, 0, true},
		{"60200", 400, `{"code":60200,"message":"Invalid parameter","more_info":"https://www.twilio.com/docs/errors/60200","status":400}`, "", KindInvalidPhone, 60200, true},
		{"60202", 429, `{"code":60202,"message":"Max check attempts reached","status":429}`, "", KindTooManyAttempts, 60202, true},
		{"60203", 429, `{"code":60203,"message":"Max send attempts reached","status":429}`, "", KindTooManyAttempts, 60203, true},
		{"20404", 404, `{"code":20404,"message":"The requested resource was not found","status":404}`, "", KindExpired, 20404, true},
		{"60410 fraud guard", 403, `{"code":60410,"message":"Verification delivery attempt blocked","status":403}`, "", KindNotSupported, 60410, true},
		{"60605 geo permissions", 403, `{"code":60605,"message":"Verification delivery attempt blocked","status":403}`, "", KindNotSupported, 60605, true},
		{"60212 concurrent", 429, `{"code":60212,"message":"Too many concurrent requests for phone number","status":429}`, "", KindConcurrent, 60212, true},
		{"20429 throttling", 429, `{"code":20429,"message":"Too many requests","status":429}`, "", KindUnavailable, 20429, true},
		{"500", 500, `{"code":20500,"message":"Internal Server Error","status":500}`, "", KindUnavailable, 20500, true},
		{"503 html", 503, `<html>down</html>`, "", KindUnavailable, 0, true},
		{"code as string keeps the rest", 400, `{"code":"60200","message":"Invalid parameter"}`, "", KindOther, 0, true},
		{"401", 401, `{"code":20003,"message":"Authenticate","status":401}`, "", KindOther, 20003, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := decodeResponse(tt.status, []byte(tt.body))
			if !tt.fails {
				if err != nil || v.Status != tt.want {
					t.Fatalf("decodeResponse = %+v, %v; want status %q", v, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("decodeResponse = %+v, nil; want an error", v)
			}
			if got := KindOf(err); got != tt.kind {
				t.Errorf("KindOf(%v) = %v, want %v", err, got, tt.kind)
			}
			var te *Error
			if errors.As(err, &te) && te.Code != tt.code {
				t.Errorf("Code = %d, want %d", te.Code, tt.code)
			}
		})
	}
}

func TestMaskPhone(t *testing.T) {
	tests := map[string]string{
		"+15555550100":  "+1******0100",
		"+447700900123": "+4*******0123",
		"15555550100":   "1******0100",
		"+1234":         "*****",
		"":              "",
	}
	for in, want := range tests {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMaskSecrets(t *testing.T) {
	got := maskSecrets("Invalid parameter `To`: +15555550100 (15555550100), code 482913", "+15555550100", "482913")
	for _, secret := range []string{"5555550100", "482913"} {
		if strings.Contains(got, secret) {
			t.Errorf("maskSecrets left %q in %q", secret, got)
		}
	}
	if !strings.Contains(got, "+1******0100") {
		t.Errorf("maskSecrets(...) = %q, want the masked phone in it", got)
	}
}

func FuzzDecodeResponse(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, `{"sid":"VEaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","status":"approved","valid":true}`},
		{201, `{"status":"pending","send_code_attempts":[{"channel":"SMS"}]}`},
		{400, `{"code":60200,"message":"Invalid parameter","more_info":"https://www.twilio.com/docs/errors/60200","status":400}`},
		{429, `{"code":60202,"message":"Max check attempts reached","status":429}`},
		{404, `{"code":20404}`},
		{500, `<html>`},
		{200, `null`},
		{400, `{"code":1e99,"message":"\u0000\n\u2028"}`},
		{0, ``},
		{-1, `[]`},
	}
	for _, s := range seeds {
		f.Add(s.status, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		v, err := decodeResponse(status, body)
		success := status >= 200 && status < 300
		if !success {
			var te *Error
			if !errors.As(err, &te) {
				t.Fatalf("status %d: err = %T %v, want *Error", status, err, err)
			}
			if te.Status != status {
				t.Fatalf("Status = %d, want %d", te.Status, status)
			}
			for _, s := range []string{te.Message, te.MoreInfo} {
				if !utf8.ValidString(s) || len(s) > maxMessageLen+len(truncateMarker) {
					t.Fatalf("unsafe text %q", s)
				}
				if strings.IndexFunc(s, unicode.IsControl) >= 0 {
					t.Fatalf("control character in %q", s)
				}
			}
		}
		if err != nil {
			if v != (verification{}) {
				t.Fatalf("error %v with a result %+v", err, v)
			}
			if k := KindOf(err); k < KindOther || k > KindConcurrent {
				t.Fatalf("KindOf = %d", k)
			}
			_ = err.Error()
			if success && !errors.Is(err, ErrUnavailable) {
				t.Fatalf("unreadable 2xx: %v, want ErrUnavailable", err)
			}
		}
	})
}
