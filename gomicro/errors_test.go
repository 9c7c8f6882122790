package gomicro_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go-micro.dev/v4/broker"
	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	mselector "go-micro.dev/v4/selector"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/outcome"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// go-micro's defaults are global and reach the network (the default mDNS
// registry multicasts): replace them before any test, and ignore the
// goroutines go-micro never stops (its memory registry's pruning, its
// client's cache janitor, the config loader its root package starts at
// init, and the breaker's hystrix monitors through rpcguard.NewClient).
func TestMain(m *testing.M) {
	registry.DefaultRegistry = registry.NewMemoryRegistry()
	mselector.DefaultSelector = mselector.NewSelector(mselector.Registry(registry.DefaultRegistry))
	broker.DefaultBroker = broker.NewMemoryBroker()
	logger.DefaultLogger = logger.NewLogger(logger.WithLevel(logger.ErrorLevel)) // quiet
	ignore := append(testcluster.HystrixGoroutines(),
		goleak.IgnoreAnyFunction("go-micro.dev/v4/registry.(*memRegistry).ttlPrune"),
		goleak.IgnoreAnyFunction("github.com/patrickmn/go-cache.(*janitor).Run"),
		goleak.IgnoreAnyFunction("go-micro.dev/v4/config.(*config).run"),
		goleak.IgnoreAnyFunction("go-micro.dev/v4/config.(*config).run.func2"),
		goleak.IgnoreAnyFunction("go-micro.dev/v4/config/loader/memory.(*memory).Watch.func1"),
		// go-micro's HTTP broker never closes its client's keep-alive
		// connections (a finalizer meant to does not), so they outlive
		// Disconnect on both sides. No other net/http client or server runs
		// in this package's tests.
		goleak.IgnoreAnyFunction("net/http.(*conn).serve"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
	goleak.VerifyTestMain(m, ignore...)
}

// go-micro → gRPC: every code of the table, and the client errors that
// were never sent.
func TestFromMicro(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"dial failure", merrors.New("go.micro.client", "connection error: dial tcp 127.0.0.1:1: connect: connection refused", 500), codes.Unavailable},
		{"a crashed node under a pooled connection", merrors.New("go.micro.client.transport", "write tcp 127.0.0.1:5->127.0.0.1:6: write: broken pipe", 500), codes.Unavailable},
		{"a pooled connection cut mid-answer", merrors.New("go.micro.client.transport", "unexpected EOF", 500), codes.Unavailable},
		{"service not found", merrors.New("go.micro.client", "service greeter: not found", 500), codes.Unavailable},
		{"no node left to pick", merrors.New("go.micro.client", "error getting next greeter node: none available", 500), codes.Unavailable},
		{"no node left to pick, grpc client", merrors.New("go.micro.client", "error selecting greeter node: none available", 500), codes.Unavailable},
		{"an error with a gRPC status", status.Error(codes.ResourceExhausted, "slow down"), codes.ResourceExhausted},
		{"grpc plugin dial failure", merrors.New("go.micro.client", "rpc error: code = Unavailable desc = connection error: desc = \"transport: Error while dialing\"", 503), codes.Unavailable},
		{"timeout", merrors.Timeout("go.micro.client", "call timeout"), codes.DeadlineExceeded},
		{"400", merrors.BadRequest("svc", "bad"), codes.InvalidArgument},
		{"401", merrors.Unauthorized("svc", "who"), codes.Unauthenticated},
		{"403", merrors.Forbidden("svc", "no"), codes.PermissionDenied},
		{"404", merrors.NotFound("svc", "none"), codes.NotFound},
		{"409", merrors.Conflict("svc", "again"), codes.Aborted},
		{"418", merrors.New("svc", "teapot", 418), codes.FailedPrecondition},
		{"429", merrors.New("svc", "slow down", 429), codes.ResourceExhausted},
		{"499", merrors.New("svc", "gone", 499), codes.Canceled},
		{"500", merrors.InternalServerError("svc", "oops"), codes.Internal},
		{"501", merrors.New("svc", "no such method", 501), codes.Unimplemented},
		{"502", merrors.New("svc", "bad gateway", 502), codes.Unavailable},
		{"503", merrors.New("svc", "down", 503), codes.Unavailable},
		{"504", merrors.New("svc", "late", 504), codes.DeadlineExceeded},
		{"599", merrors.New("svc", "odd", 599), codes.Internal},
		{"json from a server", errors.New(`{"id":"svc","code":404,"detail":"none","status":"Not Found"}`), codes.NotFound},
		{"a server relaying its dependency's dial failure", errors.New(`{"id":"go.micro.client","code":500,"detail":"connection error: dial tcp 127.0.0.1:1: connect: connection refused","status":"Internal Server Error"}`), codes.Internal},
		{"plain error", errors.New("boom"), codes.Unknown},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := gomicro.FromMicro(tc.err)
			if got := status.Code(err); got != tc.want {
				t.Fatalf("status.Code = %v, want %v", got, tc.want)
			}
			me, ok := merrors.As(err)
			if !ok {
				t.Fatalf("errors.As found no go-micro error in %v", err)
			}
			if back := merrors.FromError(err); back.Code != me.Code || back.Detail != me.Detail || merrors.Parse(err.Error()).Code != me.Code {
				t.Fatalf("go-micro's FromError/Parse changed the error: %+v, %+v", back, me)
			}
		})
	}
	// What the engines must recognise: a failed pick, and an error's own
	// identity through the translation.
	if err := gomicro.FromMicro(merrors.New("go.micro.client", "error getting next greeter node: none available", 500)); !errors.Is(err, selector.ErrAllTried) {
		t.Errorf("no node left to pick: %v does not answer errors.Is(selector.ErrAllTried)", err)
	}
	if err := gomicro.FromMicro(merrors.New("go.micro.client", "service greeter: not found", 500)); !errors.Is(err, selector.ErrNoNodes) {
		t.Errorf("service not found: %v does not answer errors.Is(selector.ErrNoNodes)", err)
	}
	if err := gomicro.FromMicro(fmt.Errorf("wrapped: %w", breaker.ErrOpen)); !errors.Is(err, breaker.ErrOpen) {
		t.Errorf("%v lost what it wraps", err)
	}
	for _, err := range []error{nil, context.Canceled, context.DeadlineExceeded} {
		if got := gomicro.FromMicro(err); got != err {
			t.Errorf("FromMicro(%v) = %v, want it unchanged", err, got)
		}
	}
}

// A dial failure was never sent: the retry engine retries even a call that
// is not idempotent; a server's 503 is not retried for one.
func TestNeverSentIsRetried(t *testing.T) {
	sel, err := selector.New(selector.WithStrategy(selector.RoundRobin))
	if err != nil {
		t.Fatal(err)
	}
	if err := sel.Update([]selector.Node{{ID: "a", Addr: "127.0.0.1:1"}, {ID: "b", Addr: "127.0.0.1:2"}}); err != nil {
		t.Fatal(err)
	}
	p, err := retry.New() // nothing idempotent
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		first    error
		attempts int
	}{
		{merrors.New("go.micro.client", "connection error: dial tcp 127.0.0.1:1: connect: connection refused", 500), 2},
		{merrors.New("greeter", "down", 503), 1},
	} {
		n := 0
		_ = p.Do(context.Background(), sel, func(context.Context, selector.Node) error {
			n++
			if n == 1 {
				return gomicro.FromMicro(tc.first)
			}
			return nil
		})
		if n != tc.attempts {
			t.Errorf("after %v: %d attempts, want %d", tc.first, n, tc.attempts)
		}
	}
}

// gRPC → go-micro, and back: the codes that have a meaning of their own
// survive the round trip.
func TestToMicroAndBack(t *testing.T) {
	for _, c := range []codes.Code{codes.Canceled, codes.InvalidArgument, codes.DeadlineExceeded, codes.NotFound,
		codes.PermissionDenied, codes.ResourceExhausted, codes.Aborted, codes.Unimplemented, codes.Internal,
		codes.Unavailable, codes.Unauthenticated} {
		err := gomicro.ToMicro("greeter", status.Error(c, "x"))
		me, ok := merrors.As(err)
		if !ok || me.Code != outcome.MicroCode(c) || me.Id != "greeter" || me.Detail != "x" {
			t.Fatalf("ToMicro(%v) = %#v", c, err)
		}
		if back := status.Code(gomicro.FromMicro(err)); back != c {
			t.Errorf("%v → %d → %v", c, me.Code, back)
		}
	}
	if me, _ := merrors.As(gomicro.ToMicro("greeter", errors.New("plain"))); me.Code != 500 {
		t.Errorf("a plain error became %d, want 500", me.Code)
	}
	orig := merrors.NotFound("greeter", "none")
	if got := gomicro.ToMicro("other", orig); got != orig {
		t.Errorf("a go-micro error was rewritten: %v", got)
	}
	if outcome.MicroCode(codes.DeadlineExceeded) != 408 || outcome.MicroCode(codes.Canceled) != 499 {
		t.Error("go-micro's own codes for timeouts and cancellation")
	}
}
