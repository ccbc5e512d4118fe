package device

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func TestPlatform(t *testing.T) {
	for raw, want := range map[string]string{
		"ios": "ios", "android": "android", "web": "web", "other": "other",
		" iOS ": "ios", "ANDROID": "android", "watch_os-10.1": "watch_os-10.1",
		"abcdefghijklmnop": "abcdefghijklmnop",
	} {
		if got, ok := Platform(raw); !ok || got != want {
			t.Errorf("Platform(%q) = %q, %v; want %q", raw, got, ok, want)
		}
	}
	for _, raw := range []string{"", "  ", "abcdefghijklmnopq", "i os", "ios/17", "iös", "ios\x00", "<script>", "ios;", strings.Repeat("a", 1000)} {
		if got, ok := Platform(raw); ok {
			t.Errorf("Platform(%q) = %q, want it dropped", raw, got)
		}
	}
}

func TestAppVersion(t *testing.T) {
	for _, raw := range []string{"1", "2.4.1", "1.0.0-beta.2+417", "2024.11.3", strings.Repeat("9", 32)} {
		if got, ok := AppVersion(raw); !ok || got != raw {
			t.Errorf("AppVersion(%q) = %q, %v", raw, got, ok)
		}
	}
	if got, ok := AppVersion(" 2.4.1 "); !ok || got != "2.4.1" {
		t.Errorf("AppVersion with spaces = %q, %v", got, ok)
	}
	for _, raw := range []string{"", "v 1", "1.0_1", "1.0;drop", "1.0\x00", "1 0", "é", strings.Repeat("9", 33)} {
		if got, ok := AppVersion(raw); ok {
			t.Errorf("AppVersion(%q) = %q, want it dropped", raw, got)
		}
	}
}

func TestFromHeaders(t *testing.T) {
	h := http.Header{}
	h.Set(HeaderPlatform, "Android")
	h.Set(HeaderAppVersion, "3.1.0")
	if got := FromHeaders(h); got != (Info{Platform: "android", AppVersion: "3.1.0"}) {
		t.Errorf("FromHeaders = %+v", got)
	}
	h.Add(HeaderPlatform, "ios")
	h.Set(HeaderAppVersion, strings.Repeat("1", 40))
	if got := FromHeaders(h); got != (Info{}) {
		t.Errorf("FromHeaders of a repeated platform and a long version = %+v, want nothing", got)
	}
	if got := FromHeaders(http.Header{}); got != (Info{}) {
		t.Errorf("FromHeaders of no headers = %+v", got)
	}
}

var (
	platformRE   = regexp.MustCompile(`^[a-z0-9._-]{1,16}$`)
	appVersionRE = regexp.MustCompile(`^[0-9A-Za-z.+-]{1,32}$`)
)

// Whatever arrives, what is kept is bounded and of the allowed characters,
// and a kept value reads back as itself.
func FuzzDeviceHeaders(f *testing.F) {
	for _, s := range []string{"ios", " Android ", "1.0.0-beta+1", "", "é", "a\x00b", strings.Repeat("x", 40)} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, platform, version string) {
		if p, ok := Platform(platform); ok {
			if !platformRE.MatchString(p) {
				t.Fatalf("Platform(%q) kept %q", platform, p)
			}
			if again, ok := Platform(p); !ok || again != p {
				t.Fatalf("Platform(%q) = %q, not stable", p, again)
			}
		} else if p != "" {
			t.Fatalf("Platform(%q) dropped it but answered %q", platform, p)
		}
		if v, ok := AppVersion(version); ok {
			if !appVersionRE.MatchString(v) {
				t.Fatalf("AppVersion(%q) kept %q", version, v)
			}
			if again, ok := AppVersion(v); !ok || again != v {
				t.Fatalf("AppVersion(%q) = %q, not stable", v, again)
			}
		} else if v != "" {
			t.Fatalf("AppVersion(%q) dropped it but answered %q", version, v)
		}
		h := http.Header{}
		h.Set(HeaderPlatform, platform)
		h.Set(HeaderAppVersion, version)
		d := FromHeaders(h)
		if len(d.Platform) > MaxPlatform || len(d.AppVersion) > MaxAppVersion {
			t.Fatalf("FromHeaders kept %+v", d)
		}
	})
}
