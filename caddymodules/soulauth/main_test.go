package soulauth_test

import (
	"os"
	"testing"

	"github.com/soulapp/soul/soultest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	soultest.RemoveBinary()
	os.Exit(code)
}
