package breaker_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/internal/testcluster"
)

// hystrix-go starts two goroutines per circuit that run for the life of the
// process (see the package doc), and one per metrics collector per event.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m, testcluster.HystrixGoroutines()...) }

var namespaces atomic.Int64

// newBreaker builds a Breaker in a namespace of its own, with an event
// counter.
func newBreaker(t testing.TB, ev *eventCounter, opts ...breaker.Option) *breaker.Breaker {
	t.Helper()
	opts = append([]breaker.Option{breaker.WithNamespace(fmt.Sprintf("test-%d", namespaces.Add(1)))}, opts...)
	if ev != nil {
		opts = append(opts, breaker.WithHooks(breaker.Hooks{OnEvent: ev.add, OnDropped: ev.drop}))
	}
	b, err := breaker.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type eventCounter struct {
	mu      sync.Mutex
	n       map[string]int
	cmds    map[string]bool
	dropped atomic.Int64
}

func (e *eventCounter) add(cmd, ev string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.n == nil {
		e.n, e.cmds = map[string]int{}, map[string]bool{}
	}
	e.n[ev]++
	e.cmds[cmd] = true
}

func (e *eventCounter) drop(string, string) { e.dropped.Add(1) }

func (e *eventCounter) get(ev string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n[ev]
}

// grpcSetup is one node behind a client with the breaker's interceptors.
func grpcSetup(t *testing.T, b *breaker.Breaker) (*echo.Server, *grpc.ClientConn) {
	t.Helper()
	node := testcluster.Start(t, 1).Nodes[0]
	cc := testcluster.Dial(t, "passthrough:///"+node.Addr,
		grpc.WithChainUnaryInterceptor(b.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(b.StreamClientInterceptor()))
	return node, cc
}

func unary(cc *grpc.ClientConn) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := echo.Unary(ctx, cc, grpc.WaitForReady(true))
	return err
}

// failPattern fails the calls whose index modulo 5 is below k (k=3: 60%).
func failPattern(k int64) echo.Fault {
	var n atomic.Int64
	return func(context.Context, string) error {
		if (n.Add(1)-1)%5 < k {
			return status.Error(codes.Unavailable, "injected")
		}
		return nil
	}
}

// A brownout (60% of calls failing) is not an outage: with the defaults the
// circuit stays closed and every call is tried, so the caller gets the 40%
// the dependency can give (at hystrix's 50% it opened and refused them).
func TestBrownoutKeepsTheCircuitClosed(t *testing.T) {
	b := newBreaker(t, nil)
	node, cc := grpcSetup(t, b)
	node.SetFault(failPattern(3))
	ok := 0
	for range 200 {
		err := unary(cc)
		if errors.Is(err, breaker.ErrOpen) {
			t.Fatal("the circuit opened in a brownout")
		}
		if err == nil {
			ok++
		}
	}
	if ok != 80 || node.Calls() != 200 {
		t.Fatalf("%d of 200 calls succeeded, %d reached the server; want 80 and 200", ok, node.Calls())
	}
}

func TestOpensOnFailuresAndOneProbeCloses(t *testing.T) {
	const sleep = 300 * time.Millisecond
	b := newBreaker(t, nil, breaker.WithSettings(breaker.Settings{SleepWindow: sleep}))
	node, cc := grpcSetup(t, b)
	node.SetFault(failPattern(5)) // down: every call fails
	for range 40 {
		_ = unary(cc)
	}
	testcluster.WaitFor(t, 5*time.Second, "the circuit to open", func() bool { return b.IsOpen(echo.UnaryMethod) })
	served := node.Calls()
	for range 20 {
		err := unary(cc)
		if !errors.Is(err, breaker.ErrOpen) || status.Code(err) != codes.Unavailable {
			t.Fatalf("call on an open circuit: %v, want ErrOpen with code Unavailable", err)
		}
	}
	if node.Calls() != served {
		t.Fatalf("calls on the open circuit reached the server (%d → %d)", served, node.Calls())
	}
	node.SetFault(nil)
	openedBy := time.Now()
	for {
		err := unary(cc)
		if err == nil {
			break
		}
		if !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("before the probe: %v, want ErrOpen", err)
		}
		if time.Since(openedBy) > 10*time.Second {
			t.Fatal("no probe within 10 s")
		}
		time.Sleep(5 * time.Millisecond) // pace the polling; the condition is the probe's success
	}
	if got := node.Calls() - served; got != 1 {
		t.Fatalf("%d calls reached the server before the circuit closed, want exactly the one probe", got)
	}
	if b.IsOpen(echo.UnaryMethod) {
		t.Fatal("the probe's success did not close the circuit")
	}
	for range 10 {
		if err := unary(cc); err != nil {
			t.Fatalf("after closing: %v", err)
		}
	}
}

func TestCallerErrorsAndCancellationsDoNotOpen(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev, breaker.WithSettings(breaker.Settings{VolumeThreshold: 10}))
	node, cc := grpcSetup(t, b)
	node.SetFault(echo.FailWith(codes.NotFound))
	for range 100 {
		if err := unary(cc); status.Code(err) != codes.NotFound {
			t.Fatalf("got %v, want NotFound from the server", err)
		}
	}
	node.SetFault(echo.Hang())
	for range 30 {
		ctx, cancel := context.WithCancel(context.Background())
		before := node.Calls()
		done := make(chan struct{})
		go func() { // the caller gives up once the call is on the server
			defer close(done)
			testcluster.WaitFor(t, 5*time.Second, "the call to reach the server", func() bool { return node.Calls() > before })
			cancel()
		}()
		_, err := echo.Unary(ctx, cc, grpc.WaitForReady(true))
		<-done
		if status.Code(err) != codes.Canceled {
			t.Fatalf("canceled call: %v", err)
		}
	}
	if ev.get("success") != 100 || ev.get("context_canceled") != 30 || ev.get("failure") != 0 {
		t.Fatalf("events %v: want 100 success, 30 context_canceled, no failure", ev.n)
	}
	node.SetFault(nil)
	if b.IsOpen(echo.UnaryMethod) {
		t.Fatal("the circuit opened on NotFound answers and cancellations")
	}
	if err := unary(cc); err != nil {
		t.Fatalf("after 100 NotFound and 30 cancellations: %v", err)
	}
}

func TestTimeoutCancelsTheServerHandler(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev, breaker.WithSettings(breaker.Settings{Timeout: 50 * time.Millisecond}))
	node, cc := grpcSetup(t, b)
	var canceled atomic.Bool
	node.SetFault(func(ctx context.Context, _ string) error {
		<-ctx.Done()
		canceled.Store(true)
		return status.FromContextError(ctx.Err()).Err()
	})
	if err := unary(cc); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DeadlineExceeded at the breaker's timeout", err)
	}
	testcluster.WaitFor(t, 5*time.Second, "the server handler to see its context end", canceled.Load)
	if ev.get("timeout") != 1 {
		t.Fatalf("events %v, want one timeout", ev.n)
	}
}

func TestMaxConcurrencyRejectsWithoutBlocking(t *testing.T) {
	b := newBreaker(t, nil, breaker.WithSettings(breaker.Settings{MaxConcurrent: 2, Timeout: 10 * time.Second}))
	node, cc := grpcSetup(t, b)
	release := make(chan struct{})
	node.SetFault(func(ctx context.Context, _ string) error {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	})
	var rejected, ok atomic.Int64
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := unary(cc)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, breaker.ErrRejected) && status.Code(err) == codes.ResourceExhausted:
				rejected.Add(1)
			default:
				t.Errorf("unexpected: %v", err)
			}
		}()
	}
	testcluster.WaitFor(t, 5*time.Second, "3 rejections and 2 calls on the server", func() bool {
		return rejected.Load() == 3 && node.Calls() == 2
	})
	close(release)
	wg.Wait()
	if ok.Load() != 2 || rejected.Load() != 3 {
		t.Fatalf("%d served, %d rejected; want 2 and 3", ok.Load(), rejected.Load())
	}
}

func TestServerInterceptorShedsLoad(t *testing.T) {
	b := newBreaker(t, nil, breaker.WithSettings(breaker.Settings{VolumeThreshold: 5, SleepWindow: time.Minute}))
	node, err := echo.Start("srv", grpc.ChainUnaryInterceptor(b.UnaryServerInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(node.Kill)
	node.SetFault(echo.FailWith(codes.Internal)) // the handler's own dependency is down
	cc := testcluster.Dial(t, "passthrough:///"+node.Addr)
	for range 10 {
		_ = unary(cc)
	}
	testcluster.WaitFor(t, 5*time.Second, "the server's circuit to open", func() bool { return b.IsOpen(echo.UnaryMethod) })
	handled := node.Calls()
	if err := unary(cc); status.Code(err) != codes.Unavailable || !strings.Contains(status.Convert(err).Message(), "circuit open") {
		t.Fatalf("got %v, want Unavailable: circuit open", err)
	}
	if node.Calls() != handled {
		t.Fatal("the handler ran although the server's circuit is open")
	}
}

func TestRunsOnTheCallersGoroutine(t *testing.T) {
	b := newBreaker(t, nil)
	for range 100 {
		outer := goid()
		err := b.Do(context.Background(), "same-goroutine", func(ctx context.Context) error {
			if goid() != outer {
				return errors.New("fn ran on another goroutine")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestFallback(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev, breaker.WithFallback(func(ctx context.Context, cmd string, err error) error {
		if status.Code(err) == codes.Unavailable {
			return nil // served from a cache, say
		}
		return err
	}))
	if err := b.Do(context.Background(), "fb", func(context.Context) error { return status.Error(codes.Unavailable, "x") }); err != nil {
		t.Fatalf("fallback did not serve: %v", err)
	}
	if err := b.Do(context.Background(), "fb", func(context.Context) error { return status.Error(codes.Internal, "x") }); status.Code(err) != codes.Internal {
		t.Fatalf("fallback failure: %v", err)
	}
	if ev.get("fallback-success") != 1 || ev.get("fallback-failure") != 1 || ev.get("failure") != 2 {
		t.Fatalf("events %v", ev.n)
	}
}

func TestBadSettings(t *testing.T) {
	for _, tc := range []struct {
		opts []breaker.Option
		want string
	}{
		{nil, "WithNamespace is required"},
		{[]breaker.Option{breaker.WithNamespace("a b")}, `WithNamespace("a b")`},
		{[]breaker.Option{breaker.WithNamespace("x"), breaker.WithSettings(breaker.Settings{Timeout: -time.Second})}, "Timeout must be 0 (none) or at least 1ms"},
		{[]breaker.Option{breaker.WithNamespace("x"), breaker.WithSettings(breaker.Settings{Timeout: 500 * time.Microsecond})}, "Timeout must be 0 (none) or at least 1ms (hystrix counts milliseconds), got 500µs"},
		{[]breaker.Option{breaker.WithNamespace("x"), breaker.WithSettings(breaker.Settings{MaxConcurrent: -1})}, "MaxConcurrent must be 0 (no limit) or positive, got -1"},
		{[]breaker.Option{breaker.WithNamespace("x"), breaker.WithSettings(breaker.Settings{ErrorPercent: 101})}, "ErrorPercent must be in 1..100, got 101"},
		{[]breaker.Option{breaker.WithNamespace("x"), breaker.WithSettings(breaker.Settings{VolumeThreshold: -5})}, "VolumeThreshold must be at least 1"},
		{[]breaker.Option{breaker.WithNamespace("x"), breaker.WithCommandSettings("/a.B/C", breaker.Settings{SleepWindow: -1})}, `settings of "/a.B/C": SleepWindow`},
		{[]breaker.Option{breaker.WithNamespace("x"), breaker.WithCommandSettings("", breaker.Settings{})}, "empty command name"},
		{[]breaker.Option{breaker.WithNamespace("x"), breaker.WithFallback(nil)}, "nil fallback"},
	} {
		if _, err := breaker.New(tc.opts...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want an error containing %q", err, tc.want)
		}
	}
}

// streamFrame is the part of a HystrixCommand frame the test reads.
type streamFrame struct {
	Type         string `json:"type"`
	Name         string `json:"name"`
	RequestCount uint32 `json:"requestCount"`
	ErrorCount   uint32 `json:"errorCount"`
	Success      uint32 `json:"rollingCountSuccess"`
	Failure      uint32 `json:"rollingCountFailure"`
	Open         bool   `json:"isCircuitBreakerOpen"`
}

func TestDashboardStreamCountsMatchCalls(t *testing.T) {
	b := newBreaker(t, nil)
	for i := range 10 {
		_ = b.Do(context.Background(), "dash", func(context.Context) error {
			if i < 3 {
				return status.Error(codes.Unavailable, "x")
			}
			return nil
		})
	}
	sh := breaker.NewStreamHandler()
	srv := httptest.NewServer(sh)
	defer srv.Close()
	defer sh.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	name := b.Namespace() + "/dash"
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var last streamFrame
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		var f streamFrame
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("bad frame %q: %v", line, err)
		}
		if f.Type != "HystrixCommand" || f.Name != name {
			continue
		}
		last = f
		if f.Success == 7 && f.Failure == 3 && f.RequestCount == 10 && f.ErrorCount == 3 {
			return
		}
	}
	t.Fatalf("no frame for %s with 7 successes and 3 failures; last %+v (scan: %v)", name, last, sc.Err())
}

func TestHTTPMiddleware(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev, breaker.WithSettings(breaker.Settings{VolumeThreshold: 5, SleepWindow: 3 * time.Second}))
	var fail atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(http.Flusher); !ok {
			t.Error("the middleware hid http.Flusher")
		}
		if fail.Load() {
			http.Error(w, "db down", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "user %s", r.PathValue("id"))
	})
	mux.HandleFunc("GET /hijack", func(w http.ResponseWriter, r *http.Request) {
		conn, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack through the middleware: %v", err)
			return
		}
		defer conn.Close()
		_, _ = bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nhijacked")
		_ = bw.Flush()
	})
	srv := httptest.NewServer(b.Middleware(mux))
	defer srv.Close()
	get := func(path string) *http.Response {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := get("/hijack"); resp.StatusCode != 200 {
		t.Fatalf("hijacked response %d", resp.StatusCode)
	}
	fail.Store(true)
	for i := range 10 {
		get(fmt.Sprintf("/users/%d", i))
	}
	testcluster.WaitFor(t, 5*time.Second, "the route's circuit to open", func() bool { return b.IsOpen("GET /users/{id}") })
	resp := get("/users/42")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "3" {
		t.Fatalf("open circuit answered %d, Retry-After %q; want 503 and 3", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	ev.mu.Lock()
	defer ev.mu.Unlock()
	if len(ev.cmds) != 2 || !ev.cmds["GET /users/{id}"] || !ev.cmds["GET /hijack"] {
		t.Fatalf("commands %v: want one per route pattern, no raw URLs", ev.cmds)
	}
	if ev.n["failure"] < 5 || ev.n["failure"]+ev.n["short-circuit"] != 11 { // 10 failing requests and the one that met the open circuit
		t.Fatalf("events %v: want the 500s counted as failures until the circuit opened", ev.n)
	}
}

// goid returns the current goroutine's id.
func goid() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	return strings.Fields(string(buf))[1]
}

// At 20,000 calls a second, hystrix's metrics channel may overflow; the
// Breaker counts what it drops through OnDropped. The circuit's state does
// not depend on the dropped events' delivery.
func TestDroppedEventsAt20kPerSecond(t *testing.T) {
	var ev eventCounter
	b := newBreaker(t, &ev, breaker.WithSettings(breaker.Settings{MaxConcurrent: 1000}))
	const calls, rate = 20000, 20000
	start := time.Now()
	for i := range calls {
		for due := start.Add(time.Duration(i) * time.Second / rate); time.Now().Before(due); {
			runtime.Gosched() // pace the calls at the rate
		}
		_ = b.Do(context.Background(), "rate", func(context.Context) error { return nil })
	}
	took := time.Since(start)
	t.Logf("%d calls in %v (%.0f/s): %d metric events dropped by hystrix-go", calls, took.Round(time.Millisecond), calls/took.Seconds(), ev.dropped.Load())
	if got := ev.get("success"); got != calls {
		t.Fatalf("%d success events for %d calls", got, calls)
	}
}

// Past MetricsRate only a sample of the outcomes reaches hystrix's
// metrics, and the circuit decides as before: at thousands of calls a
// second, an outage opens it, and once the dependency is back a probe
// closes it.
func TestSampledMetricsKeepTheCircuitRight(t *testing.T) {
	var failing atomic.Bool
	b := newBreaker(t, nil, breaker.WithSettings(breaker.Settings{MetricsRate: 20, SleepWindow: 50 * time.Millisecond}))
	call := func() error {
		return b.Do(context.Background(), "busy", func(context.Context) error {
			if failing.Load() {
				return status.Error(codes.Unavailable, "down")
			}
			return nil
		})
	}
	start := time.Now()
	for range 3000 { // well past 20 a second
		if err := call(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("3000 calls in %v", time.Since(start).Round(time.Millisecond))
	failing.Store(true)
	testcluster.WaitFor(t, 10*time.Second, "the circuit to open in the outage", func() bool {
		return errors.Is(call(), breaker.ErrOpen)
	})
	failing.Store(false)
	testcluster.WaitFor(t, 10*time.Second, "a probe to close the circuit", func() bool {
		return call() == nil && !b.IsOpen("busy")
	})
	for range 100 {
		if err := call(); err != nil {
			t.Fatalf("after the recovery: %v", err)
		}
	}
}

// An outage that begins while the window holds successful calls opens the
// circuit after a run of 2 × VolumeThreshold failures (at 90% of the window
// it would open only once the successes left it, up to 10 s later), and a
// probe after the sleep window closes it once the dependency answers.
func TestOutageAfterHealthyTrafficOpensAtOnce(t *testing.T) {
	const sleep = 200 * time.Millisecond
	b := newBreaker(t, nil, breaker.WithSettings(breaker.Settings{SleepWindow: sleep}))
	node, cc := grpcSetup(t, b)
	for range 100 {
		if err := unary(cc); err != nil {
			t.Fatal(err)
		}
	}
	node.SetFault(failPattern(5))
	for i := 0; !b.IsOpen(echo.UnaryMethod); i++ {
		if i == 40 {
			t.Fatal("40 failures in a row after 100 successes did not open the circuit")
		}
		if err := unary(cc); errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("call %d refused before the circuit opened", i)
		}
	}
	served := node.Calls()
	for range 100 {
		if err := unary(cc); !errors.Is(err, breaker.ErrOpen) {
			t.Fatalf("%v, want ErrOpen", err)
		}
	}
	if node.Calls() != served {
		t.Fatalf("%d calls reached the server through the open circuit", node.Calls()-served)
	}
	node.SetFault(nil)
	testcluster.WaitFor(t, 10*sleep+5*time.Second, "a probe to close the circuit", func() bool {
		return unary(cc) == nil
	})
	if b.IsOpen(echo.UnaryMethod) {
		t.Fatal("the probe's success left the circuit open")
	}
}
