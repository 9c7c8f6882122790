package shed_test

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/shed"
)

// queued makes every call wait 10 ms between its arrival (the Limiter's
// Tap) and the Limiter's interceptor, as a call that waits in a standing
// queue does: past the 5 ms target, for as long as calls come.
func queued() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			time.Sleep(10 * time.Millisecond)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			time.Sleep(10 * time.Millisecond)
			return h(srv, ss)
		}),
	}
}

// shedServer starts an Echo node behind l (its Tap, then queued, then its
// interceptors).
func shedServer(t *testing.T, l *shed.Limiter) *echo.Server {
	t.Helper()
	opts := append(queued(), l.ServerOptions()...)
	n, err := echo.Start("shed-node", opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill)
	return n
}

func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// untilRefused calls until one call is refused, within 10 s, and returns
// its error.
func untilRefused(t *testing.T, call func() error) error {
	t.Helper()
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		if err := call(); err != nil {
			return err
		}
	}
	t.Fatal("no call was refused in 10 s of a standing queue")
	return nil
}

// TestShedGRPC: behind a standing queue, unary calls and every stream shape
// are refused with ResourceExhausted and a grpc-retry-pushback-ms trailer of
// the target (5 ms), before the handler runs.
func TestShedGRPC(t *testing.T) {
	l := newLimiter(t)
	n := shedServer(t, l)
	cc := dial(t, n.Addr)
	var tr metadata.MD
	err := untilRefused(t, func() error {
		_, err := echo.Unary(context.Background(), cc, grpc.Trailer(&tr))
		return err
	})
	if status.Code(err) != codes.ResourceExhausted || tr.Get("grpc-retry-pushback-ms")[0] != "5" {
		t.Fatalf("refusal %v, trailer %v; want ResourceExhausted with grpc-retry-pushback-ms 5", err, tr)
	}
	served := n.Calls()
	for name, stream := range map[string]func() error{
		"server stream": func() error { _, err := echo.ServerStream(context.Background(), cc, 2); return err },
		"client stream": func() error { _, err := echo.ClientStream(context.Background(), cc, 2); return err },
		"bidi":          func() error { _, err := echo.Bidi(context.Background(), cc, 2); return err },
	} {
		if err := untilRefused(t, stream); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("%s: %v, want ResourceExhausted", name, err)
		}
	}
	if st := l.Snapshot(); st.Refused < 4 || st.Admitted != n.Calls() || n.Calls() < served {
		t.Fatalf("the handlers ran %d times, stats %+v: want one run per admitted call and none per refused one", n.Calls(), st)
	}
}

// TestShedRefusalsAreLoadNotBreakage: NewClient against two nodes that shed
// everything that queued, 300 calls: the refusals never count against the
// client's breaker and never eject a node, and every call still ends
// within its deadline with either success or ResourceExhausted.
func TestShedRefusalsAreLoadNotBreakage(t *testing.T) {
	var nodes []selector.Node
	for i := range 2 {
		n := shedServer(t, newLimiter(t))
		nodes = append(nodes, selector.Node{ID: "node-" + string(rune('0'+i)), Addr: n.Addr})
	}
	src, err := selector.NewStatic(nodes...)
	if err != nil {
		t.Fatal(err)
	}
	b, err := breaker.New(breaker.WithNamespace("shed-test"))
	if err != nil {
		t.Fatal(err)
	}
	var ejected atomic.Int64
	cc, err := rpcguard.NewClient("shed", src, rpcguard.WithBreaker(b),
		rpcguard.WithSelectorOptions(selector.WithStrategy(selector.PowerOfTwo), selector.WithEjection(selector.DefaultEjection()),
			selector.WithHooks(selector.Hooks{OnEject: func(selector.Node, time.Duration) { ejected.Add(1) }})),
		rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	var refused atomic.Int64
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 75 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				_, err := echo.Unary(ctx, cc)
				cancel()
				switch status.Code(err) {
				case codes.OK:
				case codes.ResourceExhausted:
					refused.Add(1)
				default:
					t.Errorf("call: %v, want success or ResourceExhausted", err)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	if refused.Load() == 0 {
		t.Fatal("no call was refused: the test did not shed")
	}
	for _, c := range b.Snapshot() {
		if c.Open || c.Failures != 0 {
			t.Errorf("circuit %+v after %d refusals, want closed with no failure", c, refused.Load())
		}
	}
	if ejected.Load() != 0 {
		t.Errorf("%d ejections, want none", ejected.Load())
	}
}

// TestShedHTTP: a standing queue refuses requests with 429 and Retry-After,
// before the handler; requests that did not wait are served.
func TestShedHTTP(t *testing.T) {
	l := newLimiter(t)
	var handled atomic.Int64
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handled.Add(1) }))
	wait := time.Duration(0)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The request's arrival, as a transport that knows it would tell.
		h.ServeHTTP(w, r.WithContext(shed.Arrived(r.Context(), time.Now().Add(-wait))))
	}))
	t.Cleanup(srv.Close)
	get := func() *http.Response {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp
	}
	for range 20 {
		if r := get(); r.StatusCode != http.StatusOK {
			t.Fatalf("a request that did not wait: %s", r.Status)
		}
	}
	wait = 10 * time.Millisecond
	before := handled.Load()
	var r *http.Response
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		if r = get(); r.StatusCode != http.StatusOK {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if r.StatusCode != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("%s, Retry-After %q; want 429 with Retry-After 1", r.Status, r.Header.Get("Retry-After"))
	}
	if got := handled.Load() - before; got != l.Snapshot().Admitted-20 {
		t.Fatalf("the handler ran %d times for %d admitted requests", got, l.Snapshot().Admitted-20)
	}
}

// A handler that panics gives its slot back: net/http recovers the panic
// per request, and the Limiter's in-flight count is 0 after it.
func TestShedHTTPPanicReleasesItsSlot(t *testing.T) {
	l := newLimiter(t)
	srv := httptest.NewUnstartedServer(l.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("handler bug") })))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	for range 3 {
		if resp, err := http.Get(srv.URL); err == nil {
			_ = resp.Body.Close()
			t.Fatalf("a panicking handler answered %s", resp.Status)
		}
	}
	if st := l.Snapshot(); st.InFlight != 0 || st.Admitted != 3 {
		t.Fatalf("stats %+v after 3 panics, want 3 admitted and none in flight", st)
	}
}

// The Limiter's Tap chains a tap of the server's own: it runs after the
// arrival is stamped, and its refusal is the stream's.
func TestShedTapChainsYours(t *testing.T) {
	l := newLimiter(t)
	var seen atomic.Int64
	yours := func(ctx context.Context, info *tap.Info) (context.Context, error) {
		seen.Add(1)
		if info.FullMethodName == "/"+echo.Service+"/ServerStream" {
			return nil, status.Error(codes.PermissionDenied, "not for you")
		}
		return ctx, nil
	}
	n, err := echo.Start("tapped", grpc.InTapHandle(l.Tap(yours)),
		grpc.ChainUnaryInterceptor(l.UnaryServerInterceptor()), grpc.ChainStreamInterceptor(l.StreamServerInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Kill)
	cc := dial(t, n.Addr)
	if _, err := echo.Unary(context.Background(), cc); err != nil {
		t.Fatal(err)
	}
	if _, err := echo.ServerStream(context.Background(), cc, 1); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a stream your tap refused: %v, want PermissionDenied", err)
	}
	if seen.Load() != 2 || l.Snapshot().Admitted != 1 {
		t.Fatalf("your tap saw %d streams, the Limiter admitted %d; want 2 and 1", seen.Load(), l.Snapshot().Admitted)
	}
}
