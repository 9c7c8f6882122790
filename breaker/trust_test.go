package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
)

// Defaults never refuse a healthy dependency: 64 callers at once against a
// node answering in 5 ms, no limit set.
func TestDefaultsNeverRefuseHealthyConcurrency(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev)
	node, cc := grpcSetup(t, b)
	node.SetFault(echo.Delay(5 * time.Millisecond))
	testcluster.InParallel(t, 64, 10, func() error { return unary(cc) })
	if got := node.Calls(); got != 640 {
		t.Fatalf("%d of 640 calls reached the server", got)
	}
	if ev.get("success") != 640 || ev.get("rejected") != 0 || ev.get("short-circuit") != 0 {
		t.Fatalf("events %v: want 640 successes and no refusal", ev.n)
	}
	if b.IsOpen(echo.UnaryMethod) {
		t.Fatal("the circuit opened on a healthy dependency")
	}
}

// The breaker's own refusals say nothing about the dependency: with a low
// MaxConcurrent, a burst is partly rejected, and the circuit stays closed.
func TestRejectionsNeverOpenTheCircuit(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev, breaker.WithSettings(breaker.Settings{MaxConcurrent: 2, VolumeThreshold: 5, ErrorPercent: 10}))
	node, cc := grpcSetup(t, b)
	node.SetFault(echo.Delay(5 * time.Millisecond))
	var rejected atomic.Int64
	testcluster.InParallel(t, 32, 20, func() error {
		err := unary(cc)
		if errors.Is(err, breaker.ErrRejected) && status.Code(err) == codes.ResourceExhausted {
			rejected.Add(1)
			return nil
		}
		return err
	})
	if rejected.Load() == 0 {
		t.Fatal("no call was rejected: the test did not exercise MaxConcurrent")
	}
	if ev.get("short-circuit") != 0 || b.IsOpen(echo.UnaryMethod) {
		t.Fatalf("%d rejections opened the circuit (events %v)", rejected.Load(), ev.n)
	}
}

// No timeout by default: a 1.5 s call with a 5 s deadline succeeds.
func TestNoTimeoutByDefault(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev)
	node, cc := grpcSetup(t, b)
	node.SetFault(echo.Delay(1500 * time.Millisecond))
	if err := unary(cc); err != nil {
		t.Fatalf("a 1.5 s call with a 5 s deadline: %v", err)
	}
	if ev.get("success") != 1 || ev.get("timeout") != 0 {
		t.Fatalf("events %v, want one success", ev.n)
	}
}

// Every stream shape ends, on its own, when its last message or status is
// read: its slot is given back (MaxConcurrent 1, so a held slot would
// reject the next stream) and its success is counted, while the caller's
// context is still alive.
func TestStreamShapesEndTheirCall(t *testing.T) {
	shapes := []struct {
		name string
		call func(ctx context.Context, cc *grpc.ClientConn) error
	}{
		{"unary-like", func(ctx context.Context, cc *grpc.ClientConn) error {
			_, err := echo.UnaryStream(ctx, cc)
			return err
		}},
		{"client", func(ctx context.Context, cc *grpc.ClientConn) error {
			got, err := echo.ClientStream(ctx, cc, 3)
			if err == nil && !strings.HasSuffix(got, ":3") {
				err = fmt.Errorf("answer %q", got)
			}
			return err
		}},
		{"server", func(ctx context.Context, cc *grpc.ClientConn) error {
			got, err := echo.ServerStream(ctx, cc, 3)
			if err == nil && len(got) != 3 {
				err = fmt.Errorf("got %v", got)
			}
			return err
		}},
		{"bidi", func(ctx context.Context, cc *grpc.ClientConn) error {
			got, err := echo.Bidi(ctx, cc, 3)
			if err == nil && len(got) != 3 {
				err = fmt.Errorf("got %v", got)
			}
			return err
		}},
	}
	for _, sh := range shapes {
		t.Run(sh.name, func(t *testing.T) {
			var ev eventCounter
			b := newBreaker(t, &ev, breaker.WithSettings(breaker.Settings{MaxConcurrent: 1}))
			_, cc := grpcSetup(t, b)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			for i := range 20 {
				if err := sh.call(ctx, cc); err != nil {
					t.Fatalf("stream %d: %v (a slot held by an ended stream?)", i, err)
				}
			}
			if ev.get("success") != 20 || ev.get("context_canceled") != 0 {
				t.Fatalf("events %v: want 20 successes counted as each stream ended", ev.n)
			}
		})
	}
}

// A panic in the function Do runs releases its slot, counts as a failure,
// and goes on to the caller with its value.
func TestPanicInDoReleasesItsSlot(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev, breaker.WithSettings(breaker.Settings{MaxConcurrent: 1}))
	for range 5 {
		func() {
			defer func() {
				if r := recover(); r != "boom" {
					t.Fatalf("recovered %v, want the function's panic", r)
				}
			}()
			_ = b.Do(context.Background(), "cmd", func(context.Context) error { panic("boom") })
		}()
	}
	if err := b.Do(context.Background(), "cmd", func(context.Context) error { return nil }); err != nil {
		t.Fatalf("after 5 panics: %v (their slots were not given back)", err)
	}
	if ev.get("failure") != 5 || ev.get("success") != 1 {
		t.Fatalf("events %v, want 5 failures and 1 success", ev.n)
	}
}

// A panicking stream handler behind the server interceptor gives its slot
// back (a recovery interceptor outside turns the panic into an error).
func TestPanicInStreamHandlerReleasesItsSlot(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev, breaker.WithSettings(breaker.Settings{MaxConcurrent: 1}))
	recoverer := func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
		defer func() {
			if r := recover(); r != nil {
				err = status.Errorf(codes.Internal, "panic: %v", r)
			}
		}()
		return h(srv, ss)
	}
	node, err := echo.Start("panicky", grpc.ChainStreamInterceptor(recoverer, b.StreamServerInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Kill)
	cc := testcluster.Dial(t, "passthrough:///"+node.Addr)
	var panics atomic.Bool
	panics.Store(true)
	node.SetFault(func(context.Context, string) error {
		if panics.Load() {
			panic("handler bug")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 5 {
		if _, err := echo.ServerStream(ctx, cc, 1); status.Code(err) != codes.Internal {
			t.Fatalf("panicking stream: %v, want Internal from the recoverer", err)
		}
	}
	panics.Store(false)
	if _, err := echo.ServerStream(ctx, cc, 2); err != nil {
		t.Fatalf("after 5 panics: %v (their slots were not given back)", err)
	}
	if ev.get("failure") != 5 || ev.get("success") != 1 {
		t.Fatalf("events %v, want 5 failures and 1 success", ev.n)
	}
}

// httputil.ReverseProxy panics with http.ErrAbortHandler when its upstream
// dies mid-body; net/http recovers it. The route must not answer 429
// forever after.
func TestPanicBehindHTTPMiddlewareReleasesItsSlot(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev, breaker.WithSettings(breaker.Settings{MaxConcurrent: 2}))
	var aborting atomic.Bool
	aborting.Store(true)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /proxy", func(w http.ResponseWriter, r *http.Request) {
		if aborting.Load() {
			panic(http.ErrAbortHandler)
		}
		_, _ = io.WriteString(w, "ok")
	})
	srv := httptest.NewServer(b.Middleware(mux))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	for range 5 {
		if resp, err := client.Get(srv.URL + "/proxy"); err == nil {
			_ = resp.Body.Close()
			t.Fatalf("an aborted handler answered %d", resp.StatusCode)
		}
	}
	aborting.Store(false)
	resp, err := client.Get(srv.URL + "/proxy")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after 5 aborted requests: %d, want 200 (the aborted ones kept their slots?)", resp.StatusCode)
	}
	if ev.get("failure") != 5 || ev.get("success") != 1 {
		t.Fatalf("events %v, want 5 failures and 1 success", ev.n)
	}
}

// Remote clients choose the HTTP method; 10,000 made-up methods must not
// create 10,000 circuits (hystrix keeps two goroutines per circuit for the
// life of the process).
func TestMadeUpHTTPMethodsCreateBoundedState(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev)
	mux := http.NewServeMux()
	mux.HandleFunc("/known", func(w http.ResponseWriter, r *http.Request) {})
	srv := httptest.NewServer(b.Middleware(mux))
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	before := runtime.NumGoroutine()
	for i := range 10000 {
		path := "/unrouted"
		if i%2 == 0 {
			path = "/known"
		}
		req, err := http.NewRequest(randomMethod(), srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	ev.mu.Lock()
	cmds := len(ev.cmds)
	names := make([]string, 0, cmds)
	for c := range ev.cmds {
		names = append(names, c)
	}
	ev.mu.Unlock()
	if cmds > 2 {
		t.Fatalf("10,000 made-up methods made %d commands: %v", cmds, names)
	}
	if grown := runtime.NumGoroutine() - before; grown > 20 {
		t.Fatalf("goroutines grew by %d", grown)
	}
}

func randomMethod() string {
	const letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	b := make([]byte, 4+rand.IntN(8))
	for i := range b {
		b[i] = letters[rand.IntN(len(letters))]
	}
	return string(b)
}

// A call that answers after the breaker's timeout (its work ignored the
// context) is a success, not the fallback's error.
func TestLateSuccessIsNotTheFallbacksError(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev, breaker.WithSettings(breaker.Settings{Timeout: 20 * time.Millisecond}),
		breaker.WithFallback(func(context.Context, string, error) error { return errors.New("fallback") }))
	err := b.Do(context.Background(), "slow", func(ctx context.Context) error {
		<-ctx.Done()
		return nil // the answer came anyway
	})
	if err != nil {
		t.Fatalf("a late success returned %v", err)
	}
	if ev.get("success") != 1 || ev.get("timeout") != 0 || ev.get("fallback-failure") != 0 {
		t.Fatalf("events %v, want one success", ev.n)
	}
}

func TestDoRefusesNilFunction(t *testing.T) {
	b := newBreaker(t, nil)
	if err := b.Do(context.Background(), "cmd", nil); err == nil || !strings.Contains(err.Error(), "nil function") {
		t.Fatalf("Do(nil) = %v, want a nil function error", err)
	}
}

// A gRPC proxy (grpc.UnknownServiceHandler) behind the breaker's server
// interceptor: methods that remote clients make up share one circuit, the
// registered ones keep theirs (300 made-up methods made 300 circuits).
func TestMadeUpGRPCMethodsShareOneCircuit(t *testing.T) {
	b := newBreaker(t, nil)
	proxy := func(_ any, ss grpc.ServerStream) error { return status.Error(codes.Unimplemented, "no upstream here") }
	node, err := echo.Start("proxy", grpc.StreamInterceptor(b.StreamServerInterceptor()), grpc.UnaryInterceptor(b.UnaryServerInterceptor()),
		grpc.UnknownServiceHandler(proxy))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Kill)
	cc := testcluster.Dial(t, "passthrough:///"+node.Addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 300 {
		err := cc.Invoke(ctx, fmt.Sprintf("/made.up.Service%d/Method%d", i, i), &emptypb.Empty{}, &emptypb.Empty{})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("made-up method %d: %v", i, err)
		}
	}
	if _, err := echo.Unary(ctx, cc); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range b.Snapshot() {
		names = append(names, c.Command)
	}
	if len(names) != 2 || names[0] != "(unknown method)" {
		t.Fatalf("circuits after 300 made-up methods and one real: %v, want (unknown method) and the real one", names)
	}
}
