// Package faulttest shows how to test your own client against injected
// faults: read faulttest_test.go. Client is a stand-in for your code: a
// function that calls a service through a gRPC client.
package faulttest

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/rpcguard/rpcguard/echo"
)

// Client is your code under test: it asks the service for a greeting with
// a deadline of its own.
func Client(ctx context.Context, cc grpc.ClientConnInterface) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return echo.Unary(ctx, cc)
}
