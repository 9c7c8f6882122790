package stack_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/rpcguard/rpcguard/internal/testcluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testcluster.HystrixGoroutines()...) }
