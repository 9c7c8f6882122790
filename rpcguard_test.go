package rpcguard_test

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/selector"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testcluster.HystrixGoroutines()...) }

func TestBadInput(t *testing.T) {
	src, _ := selector.NewStatic(selector.Node{ID: "a", Addr: "127.0.0.1:1"})
	for _, tc := range []struct {
		service string
		src     selector.Source
		opts    []rpcguard.Option
		want    string
	}{
		{"", src, nil, "empty service name"},
		{"greeter", nil, nil, "nil selector.Source"},
		{"bad name!", src, nil, "default breaker"},
		{"greeter", src, []rpcguard.Option{rpcguard.WithBalancerConfig(`{"strategy":"fastest"}`),
			rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials()))}, `unknown strategy "fastest"`},
	} {
		_, err := rpcguard.NewClient(tc.service, tc.src, tc.opts...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.service, err, tc.want)
		}
	}
}
