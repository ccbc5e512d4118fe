package limiter

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/soulapp/soul/internal/testservices"
)

// benchKeys spreads calls over many subjects, as real traffic does, with a
// mix of admitted and refused hits.
var benchKeys = func() []string {
	ks := make([]string, 4096)
	for i := range ks {
		ks[i] = "203.0.113." + strconv.Itoa(i)
	}
	return ks
}()

var benchRule = Rule{"bench_default", 100, time.Minute}

func benchAllow(b *testing.B, l *Limiter) {
	ctx := context.Background()
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, err := l.Allow(ctx, benchRule, benchKeys[i%len(benchKeys)]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		var n atomic.Uint64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				if _, err := l.Allow(ctx, benchRule, benchKeys[i%uint64(len(benchKeys))]); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
	b.Run("two subjects", func(b *testing.B) {
		// A client IP and a phone: two hash slots on a cluster.
		phone := Rule{"bench_phone", 1_000_000, time.Minute}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			k := benchKeys[i%len(benchKeys)]
			if _, err := l.AllowAll(ctx, Check{benchRule, k}, Check{phone, "+1555" + k}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("two rules", func(b *testing.B) {
		b.ReportAllocs()
		day := Rule{"bench_day", 10, 24 * time.Hour}
		for i := 0; b.Loop(); i++ {
			k := benchKeys[i%len(benchKeys)]
			if _, err := l.AllowAll(ctx, Check{benchRule, k}, Check{day, k}); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkAllowMemory(b *testing.B) {
	benchAllow(b, openLimiter(b, Options{}))
}

func BenchmarkAllowRedis(b *testing.B) {
	c := testservices.RedisClient(b, testservices.RedisURL(b))
	prefix := testPrefix(b)
	dropKeysAfter(b, c, prefix)
	l := openLimiter(b, Options{Client: c, Prefix: prefix, Timeout: 5 * time.Second})
	benchAllow(b, l)
	if n := l.Fallbacks(); n != 0 {
		b.Fatalf("%d calls fell back to memory: the figures are not Redis's", n)
	}
}

// BenchmarkAllowCluster is BenchmarkAllowRedis on the shared 3-master test
// cluster: one slot group is one script call as on one Redis; two subjects
// are two calls, one after the other.
func BenchmarkAllowCluster(b *testing.B) {
	l, _, _ := clusterLimiter(b)
	benchAllow(b, l)
	if n := l.Fallbacks(); n != 0 {
		b.Fatalf("%d calls fell back to memory: the figures are not the cluster's", n)
	}
}
