package retry_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// The engine's timing logic on a fake clock (testing/synctest): the budget's
// refill, the backoff's waits and the concurrency limit's quiet period, each
// exact whatever the machine's load.

// plainNodes is a Selector of n made-up nodes (the plain API never dials).
func plainNodes(t *testing.T, n int, opts ...selector.Option) *selector.Selector {
	t.Helper()
	sel, err := selector.New(append([]selector.Option{selector.WithStrategy(selector.RoundRobin)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	var ns []selector.Node
	for i := range n {
		ns = append(ns, selector.Node{ID: "n" + strconv.Itoa(i), Addr: "127.0.0.1:" + strconv.Itoa(7000+i)})
	}
	if err := sel.Update(ns); err != nil {
		t.Fatal(err)
	}
	return sel
}

// The default budget banks 10 retries and earns 10 a second: every call to
// a dependency that is down makes 3 attempts until 10 retries are spent,
// then 1; a second later 10 retries are there again, and no more.
func TestBudgetRefillsOnTheClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := mustPolicy(t, retry.WithIdempotent("*"))
		sel := plainNodes(t, 3)
		attempts := 0
		call := func() error {
			return p.Do(context.Background(), sel, func(context.Context, selector.Node) error {
				attempts++
				return status.Error(codes.Unavailable, "down")
			})
		}
		burst := func() (retried int) {
			for range 20 {
				before := attempts
				err := call()
				if attempts-before > 1 {
					retried += attempts - before - 1
				} else if !errors.Is(err, retry.ErrBudgetExhausted) {
					t.Fatalf("a call with one attempt: %v, want ErrBudgetExhausted", err)
				}
			}
			return retried
		}
		if got := burst(); got != 10 {
			t.Fatalf("retries from a full budget: %d, want 10", got)
		}
		time.Sleep(time.Second)
		if got := burst(); got != 10 {
			t.Fatalf("retries one second later: %d, want 10 (10 a second)", got)
		}
		time.Sleep(100 * time.Millisecond)
		if got := burst(); got != 1 {
			t.Fatalf("retries 100 ms later: %d, want 1", got)
		}
	})
}

// A retry on a node the call already tried waits the backoff (50 ms, ×2,
// ±50%); a retry on a fresh node does not wait.
func TestBackoffOnlyOnTriedNodes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d delays
		p := mustPolicy(t, retry.WithIdempotent("*"), retry.WithMaxAttempts(4), retry.WithBudget(retry.Budget{Off: true}),
			retry.WithHooks(d.hook()))
		sel := plainNodes(t, 2, selector.WithReuseTried())
		start := time.Now()
		_ = p.Do(context.Background(), sel, func(context.Context, selector.Node) error {
			return status.Error(codes.Unavailable, "down")
		})
		d.mu.Lock()
		got := d.d
		d.mu.Unlock()
		if len(got) != 3 || got[0] != 0 {
			t.Fatalf("waits before retries 2..4: %v, want 3, the first (fresh node) 0", got)
		}
		for i, w := range got[1:] {
			base := 50 * time.Millisecond << i
			if w < base/2 || w > base*3/2 {
				t.Errorf("wait %d: %v, want %v ±50%%", i+2, w, base)
			}
		}
		if el := time.Since(start); el != got[1]+got[2] {
			t.Errorf("the call took %v of the fake clock, want exactly its waits %v", el, got[1]+got[2])
		}
	})
}

// A server's ResourceExhausted turns the adaptive concurrency limit on; 5 s
// without another one turn it off.
func TestConcurrencyLimitQuietsAfterFiveSeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := mustPolicy(t, retry.WithMaxAttempts(1))
		sel := plainNodes(t, 1)
		answer := status.Error(codes.ResourceExhausted, "full")
		call := func() {
			_ = p.Do(context.Background(), sel, func(context.Context, selector.Node) error { return answer })
		}
		call()
		if !p.Snapshot().Limited {
			t.Fatal("a server's ResourceExhausted did not turn the limit on")
		}
		answer = nil
		time.Sleep(5*time.Second - time.Millisecond)
		call()
		if !p.Snapshot().Limited {
			t.Fatal("the limit went off before 5 s of quiet")
		}
		time.Sleep(time.Millisecond)
		call()
		if st := p.Snapshot(); st.Limited || st.InFlight != 0 {
			t.Fatalf("after 5 s of quiet: %+v, want the limit off and nothing in flight", st)
		}
	})
}

// A panic in an attempt reaches the caller's goroutine, whether the
// attempts run one at a time or side by side (a hedge's goroutine must not
// crash the process), and gives back its concurrency slot: the limit,
// turned on by a server's ResourceExhausted, still admits healthy calls.
func TestPanicInAnAttemptReachesTheCallerAndFreesItsSlot(t *testing.T) {
	for _, hedged := range []bool{false, true} {
		opts := []retry.Option{retry.WithIdempotent("*")}
		if hedged {
			opts = append(opts, retry.WithHedging(time.Millisecond, "*"))
		}
		p := mustPolicy(t, opts...)
		sel := plainNodes(t, 3)
		// A server's refusal turns the limit on.
		_ = p.Do(context.Background(), sel, func(context.Context, selector.Node) error {
			return status.Error(codes.ResourceExhausted, "full")
		}, retry.MaxAttempts(1))
		for range 8 {
			func() {
				defer func() {
					if r := recover(); r != "boom" {
						t.Fatalf("hedged %v: recovered %v, want the attempt's panic", hedged, r)
					}
				}()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = p.Do(ctx, sel, func(context.Context, selector.Node) error { panic("boom") })
			}()
		}
		if in := p.Snapshot().InFlight; in != 0 {
			t.Fatalf("hedged %v: %d attempts in flight after 8 panics, want 0", hedged, in)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := p.Do(ctx, sel, func(context.Context, selector.Node) error { return nil })
		cancel()
		if err != nil {
			t.Fatalf("hedged %v: a healthy call after the panics: %v", hedged, err)
		}
	}
}
