package stack_test

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/stack"
)

// The plain API: any client whose nodes a Selector picks gets the whole
// stack. The first node answers Unavailable; the call, marked idempotent,
// goes on to the other.
func ExampleCall() {
	brk, _ := breaker.New(breaker.WithNamespace("example-call"))
	policy, _ := retry.New(retry.WithIdempotent("Greeter.Hello"))
	s, err := stack.New(stack.WithBreaker(brk), stack.WithRetry(policy))
	if err != nil {
		fmt.Println(err)
		return
	}
	sel, _ := selector.New(selector.WithStrategy(selector.RoundRobin))
	_ = sel.Update([]selector.Node{{ID: "a", Addr: "127.0.0.1:7001"}, {ID: "b", Addr: "127.0.0.1:7002"}})

	first := true
	reply, err := stack.Call(context.Background(), s, sel, stack.Op{Name: "greeter Greeter.Hello", Method: "Greeter.Hello"},
		func(ctx context.Context, n selector.Node) (string, error) {
			if first {
				first = false
				return "", status.Error(codes.Unavailable, "node down")
			}
			return "hello from another node", nil
		})
	fmt.Println(reply, err)
	// Output: hello from another node <nil>
}

// An open circuit refuses at once, on every transport alike.
func ExampleStack_Guard() {
	brk, _ := breaker.New(breaker.WithNamespace("example-guard"),
		breaker.WithSettings(breaker.Settings{VolumeThreshold: 1, ErrorPercent: 1, SleepWindow: 60e9, MetricsRate: -1}))
	s, _ := stack.New(stack.WithBreaker(brk))
	op := stack.Op{Name: "inventory Stock.Get"}
	for range 1_000_000 { // hystrix's metrics reach the circuit on a goroutine of its own
		err := s.Guard(context.Background(), op, func(ctx context.Context) error {
			return status.Error(codes.Unavailable, "down")
		})
		if errors.Is(err, breaker.ErrOpen) {
			fmt.Println(status.Code(err), "circuit open")
			return
		}
	}
	// Output: Unavailable circuit open
}

// A nil Stack or function is a clear error, never a panic.
func ExampleStack_Guard_nil() {
	var s *stack.Stack
	fmt.Println(s.Guard(context.Background(), stack.Op{Name: "x"}, func(context.Context) error { return nil }))
	_, err := stack.Do[int](context.Background(), nil, stack.Op{Name: "x"}, nil)
	fmt.Println(err)
	// Output:
	// stack: Guard("x"): nil Stack or function
	// stack: Do("x"): nil attempt function
}
