// Package device reads what an app says about itself in the X-Platform and
// X-App-Version request headers, so a person can tell their signed-in
// devices apart. Both headers are optional and come from outside: a value
// that is malformed or too long is dropped, never stored.
package device

import (
	"net/http"
	"strings"
)

// The request headers an app describes itself with.
const (
	HeaderPlatform   = "X-Platform"
	HeaderAppVersion = "X-App-Version"
)

// The bounds of the values kept.
const (
	MaxPlatform   = 16
	MaxAppVersion = 32
)

// Info is what a sign-in or refresh said about its device; an empty field
// was not given or was dropped.
type Info struct {
	Platform   string
	AppVersion string
}

// FromHeaders reads the device headers of h. A header given more than once
// is dropped, as is a value that Platform or AppVersion refuses.
func FromHeaders(h http.Header) Info {
	var d Info
	if v, ok := single(h, HeaderPlatform); ok {
		d.Platform, _ = Platform(v)
	}
	if v, ok := single(h, HeaderAppVersion); ok {
		d.AppVersion, _ = AppVersion(v)
	}
	return d
}

func single(h http.Header, name string) (string, bool) {
	vs := h.Values(name)
	if len(vs) != 1 {
		return "", false
	}
	return vs[0], true
}

// Platform returns the platform named by raw, trimmed and in lower case:
// ios, android, web, other or another short name of [a-z0-9._-], 1 to
// MaxPlatform characters. It reports false for anything else.
func Platform(raw string) (string, bool) {
	v := strings.TrimSpace(raw)
	if len(v) == 0 || len(v) > MaxPlatform {
		return "", false
	}
	out := make([]byte, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return "", false
		}
		out[i] = c
	}
	return string(out), true
}

// AppVersion returns the app version raw names, trimmed: 1 to
// MaxAppVersion characters of [0-9A-Za-z.+-] such as 2.4.1 or
// 1.0.0-beta.2+417. It reports false for anything else.
func AppVersion(raw string) (string, bool) {
	v := strings.TrimSpace(raw)
	if len(v) == 0 || len(v) > MaxAppVersion {
		return "", false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '+' || c == '-') {
			return "", false
		}
	}
	return v, true
}
