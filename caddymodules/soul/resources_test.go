package soul

import (
	"strings"
	"testing"
)

func TestRedisClusterMode(t *testing.T) {
	cases := []struct {
		url     string
		cluster bool
		bad     bool
	}{
		{url: "redis://redis.internal:6379"},
		{url: "redis://u:p@redis.internal:6379/0?cluster=0"},
		{url: "redis://h1:7000?cluster=1&addr=h2:7001&addr=h3:7002", cluster: true},
		{url: "rediss://h1:7000?cluster=true", cluster: true},
		{url: "redis://h1:7000?cluster=yes", bad: true},
	}
	for _, tc := range cases {
		got, err := redisClusterMode(tc.url)
		if (err != nil) != tc.bad || got != tc.cluster {
			t.Errorf("redisClusterMode(%q) = %v, %v; want cluster %v, error %v", tc.url, got, err, tc.cluster, tc.bad)
		}
		if err := validateRedisURL(tc.url); (err != nil) != tc.bad {
			t.Errorf("validateRedisURL(%q): %v", tc.url, err)
		}
	}
}

// FuzzRedisClusterMode: any REDIS_URL is answered without a panic, and an
// error never repeats the URL's password.
func FuzzRedisClusterMode(f *testing.F) {
	f.Add("redis://u:secret@h1:7000?cluster=1&addr=h2:7001")
	f.Add("redis://h:1?cluster=%zz")
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := redisClusterMode(raw)
		if err == nil {
			err = validateRedisURL(raw)
		}
		if err != nil && strings.Contains(raw, ":secret@") && strings.Contains(err.Error(), "secret") {
			t.Fatalf("error repeats the password: %v", err)
		}
	})
}
