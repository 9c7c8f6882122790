package faultinject_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/faultinject"
	"github.com/rpcguard/rpcguard/internal/testcluster"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func mustNew(t *testing.T, seed int64, rules []faultinject.Rule, opts ...faultinject.Option) *faultinject.Injector {
	t.Helper()
	i, err := faultinject.New(seed, rules, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return i
}

func TestDeterministicRate(t *testing.T) {
	rules := []faultinject.Rule{{Name: "flaky", Rate: 0.3, Code: codes.Unavailable}}
	run := func(seed int64) (pattern string, failed int) {
		i := mustNew(t, seed, rules)
		var b strings.Builder
		for range 2000 {
			if err := i.Apply(context.Background(), "svc", "M", "n", ""); err != nil {
				b.WriteByte('x')
				failed++
			} else {
				b.WriteByte('.')
			}
		}
		return b.String(), failed
	}
	p1, f1 := run(42)
	p2, _ := run(42)
	p3, _ := run(43)
	if p1 != p2 {
		t.Fatal("the same seed gave different faults")
	}
	if p1 == p3 {
		t.Fatal("another seed gave the same faults")
	}
	if f1 < 500 || f1 > 700 {
		t.Fatalf("rate 0.3 faulted %d of 2,000 calls", f1)
	}
}

func TestGRPCServerFaultsByNodeAndMethod(t *testing.T) {
	inj := mustNew(t, 1, []faultinject.Rule{
		{Name: "n1-down", Node: "n1", Rate: 1, Code: codes.Unavailable},
		{Name: "slow-unary", Node: "n0", Method: "Unary", Rate: 1, Latency: faultinject.Fixed(30 * time.Millisecond)},
	})
	var ccs []*grpc.ClientConn
	for _, id := range []string{"n0", "n1"} {
		n, err := echo.Start(id, grpc.ChainUnaryInterceptor(inj.UnaryServerInterceptor(id)), grpc.ChainStreamInterceptor(inj.StreamServerInterceptor(id)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(n.Kill)
		ccs = append(ccs, testcluster.Dial(t, "passthrough:///"+n.Addr))
	}
	start := time.Now()
	if _, err := echo.Unary(context.Background(), ccs[0]); err != nil {
		t.Fatalf("n0: %v", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Fatalf("n0 answered in %v, before its injected 30 ms", d)
	}
	if _, err := echo.Unary(context.Background(), ccs[1]); status.Code(err) != codes.Unavailable {
		t.Fatalf("n1: %v, want the injected Unavailable", err)
	}
	if _, err := echo.ServerStream(context.Background(), ccs[1], 3); status.Code(err) != codes.Unavailable {
		t.Fatalf("n1 stream: %v, want Unavailable", err)
	}
	// Rules change while calls run.
	if err := inj.SetRules(); err != nil {
		t.Fatal(err)
	}
	if _, err := echo.Unary(context.Background(), ccs[1]); err != nil {
		t.Fatalf("n1 after the rules were cleared: %v", err)
	}
}

func TestHangAndScript(t *testing.T) {
	inj := mustNew(t, 1, nil)
	n, err := echo.Start("n", grpc.ChainUnaryInterceptor(inj.UnaryServerInterceptor("n")))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Kill()
	cc := testcluster.Dial(t, "passthrough:///"+n.Addr)
	wait := inj.Script(context.Background(), faultinject.Step{After: 20 * time.Millisecond, Rules: []faultinject.Rule{{Name: "black-hole", Rate: 1, Hang: true}}})
	testcluster.WaitFor(t, 5*time.Second, "the scripted black hole", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := echo.Unary(ctx, cc)
		return status.Code(err) == codes.DeadlineExceeded
	})
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

func TestClientInterceptorFaultsBeforeSending(t *testing.T) {
	inj := mustNew(t, 1, []faultinject.Rule{{Name: "refuse", Method: "Unary", Rate: 1, Down: true}})
	n := testcluster.Start(t, 1).Nodes[0]
	cc := testcluster.Dial(t, "passthrough:///"+n.Addr, grpc.WithChainUnaryInterceptor(inj.UnaryClientInterceptor()))
	if _, err := echo.Unary(context.Background(), cc); status.Code(err) != codes.Unavailable || n.Calls() != 0 {
		t.Fatalf("got %v with %d calls on the server; want Unavailable and none sent", err, n.Calls())
	}
}

func TestHeaderActivationIsOffByDefault(t *testing.T) {
	rules := []faultinject.Rule{{Name: "boom", Rate: 0, Code: codes.Internal}}
	off := mustNew(t, 1, rules)
	on := mustNew(t, 1, rules, faultinject.WithHeaderActivation("x-rpcguard-fault"))
	n0, _ := echo.Start("a", grpc.ChainUnaryInterceptor(off.UnaryServerInterceptor("a")))
	n1, _ := echo.Start("b", grpc.ChainUnaryInterceptor(on.UnaryServerInterceptor("b")))
	defer n0.Kill()
	defer n1.Kill()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "x-rpcguard-fault", "boom")
	if _, err := echo.Unary(ctx, testcluster.Dial(t, "passthrough:///"+n0.Addr)); err != nil {
		t.Fatalf("header activation worked while off: %v", err)
	}
	if _, err := echo.Unary(ctx, testcluster.Dial(t, "passthrough:///"+n1.Addr)); status.Code(err) != codes.Internal {
		t.Fatalf("header activation on: %v, want Internal", err)
	}
}

func TestHTTPMiddleware(t *testing.T) {
	inj := mustNew(t, 1, []faultinject.Rule{{Name: "503", Method: "GET", Rate: 1, HTTPStatus: 503}, {Name: "cut", Method: "POST", Rate: 1, Abort: true}})
	srv := httptest.NewServer(inj.Middleware("web", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })))
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("GET answered %d, want the injected 503", resp.StatusCode)
	}
	resp, err = http.Post(srv.URL, "text/plain", strings.NewReader("x"))
	if err == nil {
		resp.Body.Close()
		t.Fatalf("POST answered %d, want the connection cut", resp.StatusCode)
	}
	if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("POST: %v, want a cut connection", err)
	}
}

func TestBadRules(t *testing.T) {
	for _, tc := range []struct {
		rule faultinject.Rule
		want string
	}{
		{faultinject.Rule{Rate: 1.5, Code: codes.Internal}, "Rate must be in [0, 1], got 1.5"},
		{faultinject.Rule{Rate: -0.1, Code: codes.Internal}, "Rate must be in [0, 1]"},
		{faultinject.Rule{Rate: 1, Code: codes.Internal, Hang: true}, "at most one of"},
		{faultinject.Rule{Rate: 1}, "does nothing"},
		{faultinject.Rule{Rate: 1, Code: codes.Code(42)}, "unknown gRPC code 42"},
		{faultinject.Rule{Rate: 1, HTTPStatus: 200}, "HTTPStatus must be an error status"},
	} {
		if _, err := faultinject.New(1, []faultinject.Rule{tc.rule}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.rule, err, tc.want)
		}
	}
	if _, err := faultinject.New(1, nil, faultinject.WithHeaderActivation("X-Fault")); err == nil {
		t.Error("an uppercase activation header was accepted")
	}
}
