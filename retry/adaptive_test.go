package retry_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// The default budget routes around one bad node and still stops a storm:
// the retry interceptor alone (round robin, no ejection, 3 attempts, the
// Echo service idempotent), 1,000 calls from 4 callers with a 1 s deadline.
func TestDefaultBudgetRoutesAroundABadNodeAndStopsAStorm(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []retry.Option
	}{
		{"retries", nil},
		{"hedging", []retry.Option{retry.WithHedging(50*time.Millisecond, "*")}},
	} {
		for _, tc := range []struct {
			name        string
			nodes       int
			setup       func(c *client)
			minSuccess  float64 // share of calls
			maxAttempts float64 // attempts reaching servers per call
		}{
			{"one of 3 unavailable", 3, func(c *client) {
				c.cluster.Nodes[0].SetFault(echo.FailWith(codes.Unavailable))
			}, 0.999, 3},
			{"5 nodes, 2 dead, 1 erroring", 5, func(c *client) {
				c.cluster.Nodes[0].Kill()
				c.cluster.Nodes[1].Kill()
				c.cluster.Nodes[2].SetFault(echo.FailWith(codes.Unavailable))
			}, 0.999, 3},
			{"every node unavailable", 3, func(c *client) {
				for _, n := range c.cluster.Nodes {
					n.SetFault(echo.FailWith(codes.Unavailable))
				}
			}, 0, 1.1},
		} {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				p := mustPolicy(t, append([]retry.Option{retry.WithIdempotent("*")}, mode.opts...)...)
				c := newClient(t, tc.nodes, `{"strategy":"round_robin"}`, p)
				tc.setup(c)
				const calls = 1000
				var ok atomic.Int64
				testcluster.InParallel(t, 4, calls/4, func() error {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					defer cancel()
					if _, err := echo.Unary(ctx, c.cc); err == nil {
						ok.Add(1)
					}
					return nil
				})
				success := float64(ok.Load()) / calls
				per := float64(c.totalCalls()) / calls
				t.Logf("%.1f%% succeeded, %.3f attempts reached servers per call", 100*success, per)
				if success < tc.minSuccess {
					t.Errorf("%.1f%% of calls succeeded, want at least %.1f%%", 100*success, 100*tc.minSuccess)
				}
				if per > tc.maxAttempts {
					t.Errorf("%.3f attempts reached servers per call, want at most %v", per, tc.maxAttempts)
				}
			})
		}
	}
}

// Once a server said ResourceExhausted, attempts past the limit wait their
// turn, and a waiting attempt ends with its caller's deadline without
// having been sent.
func TestConcurrencyLimitQueuesWithinTheDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := mustPolicy(t, retry.WithMaxAttempts(1))
		sel := plainSelector(t, 1)
		full := status.Error(codes.ResourceExhausted, "full")
		if err := p.Do(context.Background(), sel, func(context.Context, selector.Node) error { return full }); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("got %v", err) // the limit is now 1
		}
		hold, held := make(chan struct{}), make(chan struct{})
		done := make(chan error)
		go func() {
			done <- p.Do(context.Background(), sel, func(context.Context, selector.Node) error {
				close(held)
				<-hold
				return nil
			})
		}()
		<-held
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond) // within the longest wait (10 ms at least)
		defer cancel()
		var sent atomic.Bool
		err := p.Do(ctx, sel, func(context.Context, selector.Node) error { sent.Store(true); return nil })
		if !errors.Is(err, context.DeadlineExceeded) || sent.Load() {
			t.Fatalf("a waiting call: %v (sent %v), want its deadline and nothing sent", err, sent.Load())
		}
		close(hold)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := p.Do(context.Background(), sel, func(context.Context, selector.Node) error { return nil }); err != nil {
			t.Fatalf("after the slot came back: %v", err)
		}
	})
}

// While the limit is on, an attempt waits for a slot at most 8 attempts'
// time (at least 10 ms), on a fake clock: with the limit at 1 and attempts
// of about 20 ms, while an attempt holds the slot for a second, a waiting
// call ends after 160 ms with ErrFleetFull (ResourceExhausted), sent
// nowhere, not at its deadline; a call that waits for a slot that frees in
// time is served. An open loop of callers past what the fleet serves would
// otherwise each queue to its deadline.
func TestConcurrencyLimitWaitsAtMostEightAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := mustPolicy(t, retry.WithMaxAttempts(1))
		sel := plainSelector(t, 1)
		full := status.Error(codes.ResourceExhausted, "full")
		if err := p.Do(context.Background(), sel, func(context.Context, selector.Node) error {
			time.Sleep(20 * time.Millisecond)
			return full
		}); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("got %v", err) // the limit is now 1
		}
		if err := p.Do(context.Background(), sel, func(context.Context, selector.Node) error {
			time.Sleep(20 * time.Millisecond)
			return nil
		}); err != nil {
			t.Fatal(err) // an attempt takes about 20 ms (refusals, instant, do not count); the limit is 2
		}
		hold := func(d time.Duration) {
			go func() {
				_ = p.Do(context.Background(), sel, func(context.Context, selector.Node) error { time.Sleep(d); return nil })
			}()
			synctest.Wait()
		}
		hold(time.Second)
		hold(time.Second)
		start := time.Now()
		var sent atomic.Bool
		err := p.Do(context.Background(), sel, func(context.Context, selector.Node) error { sent.Store(true); return nil })
		if !errors.Is(err, retry.ErrFleetFull) || status.Code(err) != codes.ResourceExhausted || sent.Load() {
			t.Fatalf("a call behind a stuck slot: %v (code %v, sent %v), want ErrFleetFull, ResourceExhausted, nothing sent", err, status.Code(err), sent.Load())
		}
		if waited := time.Since(start); waited < 100*time.Millisecond || waited > 200*time.Millisecond {
			t.Fatalf("it waited %v, want about 8 attempts' time (160 ms)", waited)
		}
		time.Sleep(time.Second) // the holders end, and their successes raise the limit to 2.9
		hold(20 * time.Millisecond)
		hold(20 * time.Millisecond)
		hold(20 * time.Millisecond)
		start = time.Now()
		if err := p.Do(context.Background(), sel, func(context.Context, selector.Node) error { return nil }); err != nil || time.Since(start) != 20*time.Millisecond {
			t.Fatalf("a call that waited for a slot freed after 20 ms: %v after %v", err, time.Since(start))
		}
	})
}

// Waiters for a slot are served in arrival order; once a wait ran out in
// the last second (more calls come than the fleet serves) and more than a
// round of the limit waits, the newest goes first: the oldest would be
// refused by the bound anyway, and the newest has the most time left.
func TestConcurrencyLimitServesNewestFirstOnceWaitsRunOut(t *testing.T) {
	for _, tc := range []struct {
		name      string
		runOut    bool
		wantFirst int
	}{{"waits move", false, 0}, {"a wait ran out", true, 5}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := mustPolicy(t, retry.WithMaxAttempts(1))
				sel := plainSelector(t, 1)
				full := status.Error(codes.ResourceExhausted, "full")
				_ = p.Do(context.Background(), sel, func(context.Context, selector.Node) error { return full }) // the limit is now 1
				failed := status.Error(codes.Internal, "failed")                                                // neither raises nor lowers it: one slot at a time
				release := make(chan struct{})
				go func() {
					_ = p.Do(context.Background(), sel, func(context.Context, selector.Node) error { <-release; return failed })
				}()
				synctest.Wait()
				if tc.runOut {
					if err := p.Do(context.Background(), sel, func(context.Context, selector.Node) error { return nil }); !errors.Is(err, retry.ErrFleetFull) {
						t.Fatalf("a wait behind a held slot: %v, want ErrFleetFull", err)
					}
				}
				var mu sync.Mutex
				var order []int
				for i := range 6 {
					go func() {
						_ = p.Do(context.Background(), sel, func(context.Context, selector.Node) error {
							mu.Lock()
							order = append(order, i)
							mu.Unlock()
							return failed
						})
					}()
					synctest.Wait() // queued in this order
				}
				close(release)
				synctest.Wait()
				if len(order) != 6 || order[0] != tc.wantFirst {
					t.Fatalf("served %v, want waiter %d first", order, tc.wantFirst)
				}
			})
		})
	}
}

func plainSelector(t *testing.T, n int) *selector.Selector {
	t.Helper()
	sel, err := selector.New()
	if err != nil {
		t.Fatal(err)
	}
	var nodes []selector.Node
	for i := range n {
		nodes = append(nodes, selector.Node{ID: fmt.Sprint("n", i), Addr: fmt.Sprint("127.0.0.1:", 1000+i)})
	}
	if err := sel.Update(nodes); err != nil {
		t.Fatal(err)
	}
	return sel
}

// A plain error is not retried (it counts as gRPC's Unknown); Retryable
// says "try another node"; WithRetryIf sees the default answer and may
// change it.
func TestRetryableMarkAndRetryIf(t *testing.T) {
	sel := plainSelector(t, 3)
	plain := errors.New("the node's answer was garbled")
	count := func(p *retry.Policy, err error) int {
		n := 0
		_ = p.Do(context.Background(), sel, func(context.Context, selector.Node) error { n++; return err })
		return n
	}
	p := mustPolicy(t, retry.WithIdempotent("*"))
	if n := count(p, plain); n != 1 {
		t.Errorf("a plain error made %d attempts, want 1", n)
	}
	if n := count(p, retry.Retryable(plain)); n != 3 {
		t.Errorf("a Retryable error made %d attempts, want 3", n)
	}
	var sawDefault []bool
	q := mustPolicy(t, retry.WithIdempotent("*"), retry.WithRetryIf(func(err error, retryable bool) bool {
		sawDefault = append(sawDefault, retryable)
		return retryable && !errors.Is(err, plain)
	}))
	if n := count(q, retry.Retryable(plain)); n != 1 || len(sawDefault) != 1 || !sawDefault[0] {
		t.Errorf("WithRetryIf: %d attempts, saw %v; want 1 attempt and the default answer true", n, sawDefault)
	}
}
