package soulauth_test

import (
	"os"
	"testing"

	"github.com/soulapp/soul/internal/testservices"
	"github.com/soulapp/soul/soultest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	soultest.RemoveBinary()
	testservices.StopSharedRedisCluster()
	os.Exit(code)
}
