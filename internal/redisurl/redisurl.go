// Package redisurl reads the Redis URLs SOUL is given (REDIS_URL, the
// certificate storage's url): rueidis's URL form, redis:// or rediss://
// with the addr= parameter for more nodes, plus cluster=1 for a Redis
// Cluster. The rate limiter and the certificate storage read them the
// same way through here.
package redisurl

import (
	"errors"
	"fmt"
	"net/url"

	"github.com/redis/rueidis"
)

// ErrMalformed is returned for a URL rueidis cannot read. Its text never
// repeats the URL, which may hold a password.
var ErrMalformed = errors.New("the Redis URL is malformed")

// Options returns the client options of raw and whether it names a Redis
// Cluster. A single node unless the URL says cluster=1: then rueidis
// discovers the cluster from the listed nodes (the host and every addr=)
// and follows MOVED/ASK by itself. A single node is forced otherwise, so
// the client exists, and reconnects, while that node is down at start (a
// cluster client needs one listed node to answer at start).
func Options(raw string) (rueidis.ClientOption, bool, error) {
	opt, err := rueidis.ParseURL(raw)
	if err != nil {
		return rueidis.ClientOption{}, false, ErrMalformed
	}
	cluster, err := Cluster(raw)
	if err != nil {
		return rueidis.ClientOption{}, false, err
	}
	opt.ForceSingleClient = !cluster
	return opt, cluster, nil
}

// Cluster reads raw's cluster query parameter: "1" or "true" for a Redis
// Cluster; absent, "0" or "false" for a single node.
func Cluster(raw string) (bool, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return false, ErrMalformed
	}
	switch v := u.Query().Get("cluster"); v {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	default:
		return false, fmt.Errorf("cluster=%q: want 1 or 0", v)
	}
}
