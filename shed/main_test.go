package shed_test

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/rpcguard/rpcguard/internal/testcluster"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(serverEnv); mode != "" {
		serveOverload(mode) // the overload measurement's server process
		return
	}
	goleak.VerifyTestMain(m, testcluster.HystrixGoroutines()...)
}
