package rpcguard_test

// A transport adapter written outside rpcguard, with its exported API only,
// as a go-micro or HTTP adapter would be: the transport is a function of a
// context and a node. The call goes through a call span, the breaker (the
// two-step form), the retry engine (each attempt on a node the call has not
// tried) and an attempt span per attempt.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jaegerclient "github.com/uber/jaeger-client-go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
	"github.com/rpcguard/rpcguard/tracing/jaeger"
)

// transport is the fake wire: it answers for a node.
type transport func(ctx context.Context, n selector.Node) (string, error)

// adapter is the whole adapter: about twenty lines.
type adapter struct {
	tg     *tracing.Tracing
	brk    *breaker.Breaker
	policy *retry.Policy
	sel    *selector.Selector
}

func (a adapter) call(ctx context.Context, method string, wire transport) (string, error) {
	ctx, finish := a.tg.StartCall(ctx, method, tracing.SpanInfo{})
	adm, err := a.brk.Allow(ctx, method)
	if err != nil {
		finish(err)
		return "", err
	}
	v, err := retry.Call(ctx, a.policy, a.sel, func(ctx context.Context, n selector.Node) (string, error) {
		ctx, done := a.tg.StartAttempt(ctx, method, tracing.SpanInfo{})
		v, err := wire(ctx, n)
		done(err)
		return v, err
	}, retry.Method(method))
	err = adm.Done(err)
	finish(err)
	return v, err
}

func newAdapter(t *testing.T, opts ...retry.Option) (adapter, *jaegerclient.InMemoryReporter) {
	t.Helper()
	rep := jaegerclient.NewInMemoryReporter()
	tr, closer, err := jaeger.New("adapter-test", jaeger.WithInMemoryReporter(rep))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = closer.Close() })
	tg, err := tracing.New(tracing.WithTracer(tr))
	if err != nil {
		t.Fatal(err)
	}
	brk, err := breaker.New(breaker.WithNamespace("adapter-" + t.Name()))
	if err != nil {
		t.Fatal(err)
	}
	policy, err := retry.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	sel, err := selector.New(selector.WithStrategy(selector.RoundRobin))
	if err != nil {
		t.Fatal(err)
	}
	if err := sel.Update([]selector.Node{{ID: "a", Addr: "127.0.0.1:1"}, {ID: "b", Addr: "127.0.0.1:2"}, {ID: "c", Addr: "127.0.0.1:3"}}); err != nil {
		t.Fatal(err)
	}
	return adapter{tg: tg, brk: brk, policy: policy, sel: sel}, rep
}

// attemptNodes returns the node tag of each finished attempt span, in order.
func attemptNodes(rep *jaegerclient.InMemoryReporter) []string {
	var out []string
	for _, s := range rep.GetSpans() {
		js := s.(*jaegerclient.Span)
		if id, ok := js.Tags()[tracing.TagNodeID].(string); ok && js.OperationName() == "Get attempt" {
			out = append(out, id)
		}
	}
	return out
}

func TestExternalAdapterNodeExclusionAndSpans(t *testing.T) {
	a, rep := newAdapter(t, retry.WithIdempotent("Get"), retry.WithBudget(retry.Budget{Off: true}))
	var tried []string
	v, err := a.call(context.Background(), "Get", func(_ context.Context, n selector.Node) (string, error) {
		tried = append(tried, n.ID)
		if len(tried) < 3 {
			return "", status.Error(codes.Unavailable, "down")
		}
		return "ok from " + n.ID, nil
	})
	if err != nil || len(tried) != 3 || tried[0] == tried[1] || tried[1] == tried[2] || tried[0] == tried[2] {
		t.Fatalf("got %q, %v after %v: want three different nodes", v, err, tried)
	}
	if got := attemptNodes(rep); !slices.Equal(got, tried) {
		t.Fatalf("attempt spans name nodes %v, want %v", got, tried)
	}
	var call *jaegerclient.Span
	for _, s := range rep.GetSpans() {
		if js := s.(*jaegerclient.Span); js.OperationName() == "Get" {
			call = js
		}
	}
	if call == nil || call.Tags()[tracing.TagNodeID] != tried[2] || call.Tags()["error"] != nil {
		t.Fatalf("call span %v, want the last node and no error", call)
	}
}

func TestExternalAdapterSentRule(t *testing.T) {
	a, _ := newAdapter(t, retry.WithBudget(retry.Budget{Off: true})) // "Put" is not idempotent
	var attempts atomic.Int32
	_, err := a.call(context.Background(), "Put", func(context.Context, selector.Node) (string, error) {
		attempts.Add(1)
		return "", status.Error(codes.Unavailable, "may have been applied")
	})
	if status.Code(err) != codes.Unavailable || attempts.Load() != 1 {
		t.Fatalf("a sent, non-idempotent call: %v after %d attempts, want 1", err, attempts.Load())
	}
	attempts.Store(0)
	v, err := a.call(context.Background(), "Put", func(_ context.Context, n selector.Node) (string, error) {
		if attempts.Add(1) == 1 {
			return "", retry.NotSent(errors.New("connection refused"))
		}
		return "ok", nil
	})
	if err != nil || v != "ok" || attempts.Load() != 2 {
		t.Fatalf("a call that never left: %q, %v after %d attempts, want ok after 2", v, err, attempts.Load())
	}
}

func TestExternalAdapterHedges(t *testing.T) {
	a, rep := newAdapter(t, retry.WithIdempotent("Get"), retry.WithHedging(20*time.Millisecond, "Get"),
		retry.WithBudget(retry.Budget{Off: true}))
	var mu sync.Mutex
	var slow string
	v, err := a.call(context.Background(), "Get", func(ctx context.Context, n selector.Node) (string, error) {
		mu.Lock()
		first := slow == ""
		if first {
			slow = n.ID
		}
		mu.Unlock()
		if first { // the first node is slow: the hedge must win
			select {
			case <-ctx.Done():
				return "", status.FromContextError(ctx.Err()).Err()
			case <-time.After(5 * time.Second):
				return "late", nil
			}
		}
		return "ok from " + n.ID, nil
	})
	if err != nil || v == "late" || v == "ok from "+slow {
		t.Fatalf("got %q, %v: want the hedge's answer", v, err)
	}
	nodes := attemptNodes(rep)
	if len(nodes) != 2 || nodes[0] == nodes[1] {
		t.Fatalf("attempt spans on %v, want two different nodes", nodes)
	}
}
