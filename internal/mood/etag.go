package mood

import (
	"errors"
	"strconv"
	"strings"
)

// ETag is a mood's entity tag: its version, quoted. It is strong: a mood
// of the same version is the same mood byte for byte.
func (m *Mood) ETag() string { return `"` + strconv.FormatInt(m.Version, 10) + `"` }

// ErrBadETag: an If-Match or If-None-Match header that is not RFC 9110's
// syntax: `*`, or a comma-separated list of entity tags, each `"…"` or
// `W/"…"`.
var ErrBadETag = errors.New("mood: malformed entity tag")

// EntityTag is one member of an If-Match or If-None-Match list.
type EntityTag struct {
	Weak   bool
	Opaque string // with its quotes
}

// Conditions is a parsed If-Match or If-None-Match header.
type Conditions struct {
	// Present: the header was sent.
	Present bool
	// Any: the header is `*`.
	Any  bool
	Tags []EntityTag
}

// maxETagHeader bounds what ParseConditions reads: a client lists a few
// tags, never kilobytes of them.
const maxETagHeader = 1024

// ParseConditions reads the values of one If-Match or If-None-Match header
// (several header lines count as one list, as RFC 9110 says).
func ParseConditions(values []string) (Conditions, error) {
	if len(values) == 0 {
		return Conditions{}, nil
	}
	c := Conditions{Present: true}
	s := strings.Join(values, ",")
	if len(s) > maxETagHeader {
		return Conditions{}, ErrBadETag
	}
	if strings.TrimSpace(s) == "*" {
		c.Any = true
		return c, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		part = strings.Trim(part, " \t")
		if part == "" {
			continue // RFC 9110's list syntax allows empty elements
		}
		var t EntityTag
		if rest, ok := strings.CutPrefix(part, "W/"); ok {
			t.Weak, part = true, rest
		}
		if len(part) < 2 || part[0] != '"' || part[len(part)-1] != '"' {
			return Conditions{}, ErrBadETag
		}
		for i := 1; i < len(part)-1; i++ {
			// etagc: %x21 / %x23-7E / obs-text
			if c := part[i]; c < 0x21 || c == '"' || c == 0x7f {
				return Conditions{}, ErrBadETag
			}
		}
		t.Opaque = part
		c.Tags = append(c.Tags, t)
	}
	if len(c.Tags) == 0 {
		return Conditions{}, ErrBadETag
	}
	return c, nil
}

// MatchStrong is If-Match's test (RFC 9110 13.1.1): true when the header
// is absent, is `*`, or lists etag as a strong tag. A tag that Caddy's
// encode handler suffixed (`"3-gzip"`: it makes a compressed answer's
// strong tag its own, and strips the suffix from If-None-Match but not
// from If-Match) names the same version.
func (c Conditions) MatchStrong(etag string) bool {
	if !c.Present || c.Any {
		return true
	}
	for _, t := range c.Tags {
		if !t.Weak && (t.Opaque == etag || withoutEncoding(t.Opaque) == etag) {
			return true
		}
	}
	return false
}

// contentEncodings are the suffixes Caddy's encode handler appends to a
// strong ETag, one per encoding it may answer in.
var contentEncodings = []string{"gzip", "zstd", "br"}

func withoutEncoding(opaque string) string {
	for _, enc := range contentEncodings {
		if base, ok := strings.CutSuffix(opaque, "-"+enc+`"`); ok {
			return base + `"`
		}
	}
	return opaque
}

// MatchWeak is If-None-Match's test (RFC 9110 13.1.2): true when the
// header is `*` or lists etag, weak or strong; a 304 then answers GET.
func (c Conditions) MatchWeak(etag string) bool {
	if !c.Present {
		return false
	}
	if c.Any {
		return true
	}
	etag = strings.TrimPrefix(etag, "W/")
	for _, t := range c.Tags {
		if t.Opaque == etag {
			return true
		}
	}
	return false
}
