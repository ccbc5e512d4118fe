package limiter

import (
	"os"
	"testing"

	"github.com/soulapp/soul/internal/testservices"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testservices.StopSharedRedisCluster()
	os.Exit(code)
}
