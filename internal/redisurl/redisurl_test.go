package redisurl

import (
	"strings"
	"testing"
)

func TestOptions(t *testing.T) {
	cases := []struct {
		url     string
		cluster bool
		nodes   int
		bad     bool
	}{
		{url: "redis://redis.internal:6379", nodes: 1},
		{url: "redis://u:p@redis.internal:6379/0?cluster=0", nodes: 1},
		{url: "redis://h1:7000?cluster=1&addr=h2:7001&addr=h3:7002", cluster: true, nodes: 3},
		{url: "rediss://h1:7000?cluster=true", cluster: true, nodes: 1},
		{url: "redis://h1:7000?cluster=yes", bad: true},
		{url: "http://h1:7000", bad: true},
	}
	for _, tc := range cases {
		opt, cluster, err := Options(tc.url)
		if (err != nil) != tc.bad || cluster != tc.cluster {
			t.Errorf("Options(%q): cluster %v, %v; want cluster %v, error %v", tc.url, cluster, err, tc.cluster, tc.bad)
			continue
		}
		if tc.bad {
			continue
		}
		if len(opt.InitAddress) != tc.nodes || opt.ForceSingleClient == tc.cluster {
			t.Errorf("Options(%q): nodes %v, single %v", tc.url, opt.InitAddress, opt.ForceSingleClient)
		}
	}
}

// FuzzOptions: any URL is answered without a panic, and an error never
// repeats the URL's password.
func FuzzOptions(f *testing.F) {
	f.Add("redis://u:secret@h1:7000?cluster=1&addr=h2:7001")
	f.Add("redis://h:1?cluster=%zz")
	f.Add("redis://:secret@h:port")
	f.Fuzz(func(t *testing.T, raw string) {
		_, _, err := Options(raw)
		if err != nil && strings.Contains(raw, ":secret@") && strings.Contains(err.Error(), "secret") {
			t.Fatalf("error repeats the password: %v", err)
		}
	})
}
