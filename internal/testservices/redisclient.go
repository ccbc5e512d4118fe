package testservices

import (
	"testing"

	"github.com/redis/rueidis"
)

// RedisClient connects to the Redis at url for a test to inspect or
// arrange keys, and closes the client when the test ends.
func RedisClient(t testing.TB, url string) rueidis.Client {
	t.Helper()
	opt, err := rueidis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("connecting to Redis: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}
