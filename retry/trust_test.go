package retry_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// The first-message timer and the first message race; a stream handed to
// the caller must never be one the timer cancelled. Thousands of streams
// whose first message comes close to the per-attempt timeout: each either
// fails before its first message or delivers all three.
func TestFirstMessageTimerNeverCancelsAHandedOverStream(t *testing.T) {
	const timeout = 3 * time.Millisecond
	p := mustPolicy(t, retry.WithIdempotent("*"), retry.WithPerAttemptTimeout(timeout), retry.WithMaxAttempts(3),
		retry.WithBudget(retry.Budget{Ratio: 1, MinPerSecond: 1000}))
	c := newClient(t, 3, `{}`, p)
	for _, n := range c.cluster.Nodes {
		n.SetFault(echo.DelayBetween(timeout/2, timeout*3/2)) // around the timeout
	}
	desc := echo.StreamDescs()[0]
	var handed, broken, failed atomic.Int64
	testcluster.InParallel(t, 4, 600, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := c.cc.NewStream(ctx, &desc, echo.ServerStreamMethod)
		if err != nil {
			return err
		}
		if err := s.SendMsg(wrapperspb.String("3")); err != nil {
			return err
		}
		_ = s.CloseSend()
		got := 0
		for {
			err := s.RecvMsg(new(wrapperspb.StringValue))
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				if got == 0 {
					failed.Add(1) // never handed over: fine
				} else {
					broken.Add(1)
					t.Errorf("a stream handed over after %d messages ended with %v", got, err)
				}
				return nil
			}
			got++
		}
		handed.Add(1)
		return nil
	})
	if broken.Load() != 0 {
		t.Fatalf("%d streams broke after their first message", broken.Load())
	}
	if handed.Load() == 0 {
		t.Fatalf("no stream got its first message (%d failed): the test exercised nothing", failed.Load())
	}
	t.Logf("%d streams delivered, %d failed before their first message", handed.Load(), failed.Load())
}

// A hedged call whose attempts all run at the deadline names every attempt
// that started, and answers as the caller's deadline.
func TestHedgedCallAtDeadlineListsEveryAttempt(t *testing.T) {
	p := mustPolicy(t, retry.WithIdempotent("*"), retry.WithHedging(10*time.Millisecond, "*"), retry.WithMaxAttempts(3),
		retry.WithBudget(retry.Budget{Ratio: 1, MinPerSecond: 100}))
	c := newClient(t, 3, `{}`, p)
	for _, n := range c.cluster.Nodes {
		n.SetFault(echo.Hang())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := echo.Unary(ctx, c.cc)
	var re *retry.Error
	if !errors.As(err, &re) || len(re.Attempts) != 3 {
		t.Fatalf("got %v, want a *retry.Error naming 3 attempts", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v (code %v), want the caller's deadline", err, status.Code(err))
	}
	for i, a := range re.Attempts {
		if a.Number != i+1 || a.Node.ID == "" {
			t.Fatalf("attempt %d: %+v, want number %d and its node", i, a, i+1)
		}
	}
}

// The caller's cancellation answers errors.Is(err, context.Canceled)
// whenever it lands: here, during an attempt, on gRPC and on the plain API.
func TestCancelDuringAttemptIsTheCallersError(t *testing.T) {
	p := mustPolicy(t)
	c := newClient(t, 1, `{}`, p)
	node := c.cluster.Nodes[0]
	node.SetFault(echo.Hang())
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		testcluster.WaitFor(t, 5*time.Second, "the call to reach the server", func() bool { return node.Calls() > 0 })
		cancel()
	}()
	_, err := echo.Unary(ctx, c.cc)
	if !errors.Is(err, context.Canceled) || status.Code(err) != codes.Canceled {
		t.Fatalf("gRPC: got %v (code %v), want context.Canceled and codes.Canceled", err, status.Code(err))
	}

	sel, err := selector.New()
	if err != nil {
		t.Fatal(err)
	}
	if err := sel.Update([]selector.Node{{ID: "a", Addr: "127.0.0.1:1"}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	err = p.Do(ctx, sel, func(ctx context.Context, _ selector.Node) error {
		cancel()
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	})
	if !errors.Is(err, context.Canceled) || status.Code(err) != codes.Canceled {
		t.Fatalf("plain: got %v (code %v), want context.Canceled and codes.Canceled", err, status.Code(err))
	}
}

func TestNilArgumentsAreErrors(t *testing.T) {
	p := mustPolicy(t)
	sel, err := selector.New()
	if err != nil {
		t.Fatal(err)
	}
	ok := func(context.Context, selector.Node) error { return nil }
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil selector", p.Do(context.Background(), nil, ok), "nil Selector"},
		{"nil function", p.Do(context.Background(), sel, nil), "nil attempt function"},
		{"nil policy", func() error {
			_, err := retry.Call(context.Background(), nil, sel, func(context.Context, selector.Node) (int, error) { return 0, nil })
			return err
		}(), "nil Policy"},
	} {
		if tc.err == nil || !strings.Contains(tc.err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.name, tc.err, tc.want)
		}
	}
}
