package rpcguard_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/grpclog"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/shed"
	"github.com/rpcguard/rpcguard/stack"
	"github.com/rpcguard/rpcguard/tracing"
)

// grpc-go's own interoperability cases (google.golang.org/grpc/interop at
// the pinned version) through every rpcguard stack, against 1 and 3 nodes
// in the in-memory registry, with and without rpcguard's server
// interceptors: a wrapped client must behave as gRPC's interop suite says
// a client does. pick_first_unary is left out (rpcguard spreads calls by
// design), and so are the cases that need credentials, a cloud or grpc-go's
// test balancers.

// interopFatal is what a case's failure panics with: the interop package
// reports failures through grpclog's Fatal.
type interopFatal struct{ msg string }

// fatalLogger is grpclog's logger with Fatal panicking instead of exiting;
// everything below Error is dropped.
type fatalLogger struct{ grpclog.LoggerV2 }

func (fatalLogger) Fatal(args ...any)   { panic(interopFatal{fmt.Sprint(args...)}) }
func (fatalLogger) Fatalln(args ...any) { panic(interopFatal{fmt.Sprintln(args...)}) }
func (fatalLogger) Fatalf(format string, args ...any) {
	panic(interopFatal{fmt.Sprintf(format, args...)})
}

func init() {
	grpclog.SetLoggerV2(fatalLogger{grpclog.NewLoggerV2(io.Discard, io.Discard, os.Stderr)})
}

// interopCases are the cases a plain client passes on loopback.
var interopCases = []struct {
	name string
	run  func(ctx context.Context, cc *grpc.ClientConn, dial func() (*grpc.ClientConn, func()))
}{
	{"empty_unary", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoEmptyUnaryCall(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"large_unary", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoLargeUnaryCall(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"client_streaming", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoClientStreaming(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"server_streaming", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoServerStreaming(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"ping_pong", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoPingPong(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"empty_stream", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoEmptyStream(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"timeout_on_sleeping_server", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoTimeoutOnSleepingServer(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"cancel_after_begin", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoCancelAfterBegin(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"cancel_after_first_response", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoCancelAfterFirstResponse(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"status_code_and_message", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoStatusCodeAndMessage(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"special_status_message", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoSpecialStatusMessage(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"custom_metadata", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoCustomMetadata(ctx, testgrpc.NewTestServiceClient(cc))
	}},
	{"unimplemented_method", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoUnimplementedMethod(ctx, cc)
	}},
	{"unimplemented_service", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoUnimplementedService(ctx, testgrpc.NewUnimplementedServiceClient(cc))
	}},
	{"rpc_soak", func(ctx context.Context, cc *grpc.ClientConn, _ func() (*grpc.ClientConn, func())) {
		interop.DoSoakTest(ctx, soakConfig(func() (*grpc.ClientConn, func()) { return cc, func() {} }))
	}},
	{"channel_soak", func(ctx context.Context, _ *grpc.ClientConn, dial func() (*grpc.ClientConn, func())) {
		interop.DoSoakTest(ctx, soakConfig(dial))
	}},
}

func soakConfig(channel func() (*grpc.ClientConn, func())) interop.SoakTestConfig {
	return interop.SoakTestConfig{RequestSize: 271828, ResponseSize: 314159, PerIterationMaxAcceptableLatency: 10 * time.Second,
		OverallTimeout: 60 * time.Second, NumWorkers: 1, Iterations: 5, ChannelForTest: channel}
}

// interopStacks make a client of the registry's "grpc.testing" service.
var interopStacks = []struct {
	name   string
	client func(t *testing.T, reg *health.Memory) (*grpc.ClientConn, error)
}{
	{"NewClient defaults", func(t *testing.T, reg *health.Memory) (*grpc.ClientConn, error) {
		return rpcguard.NewClient("grpc.testing", reg, rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}},
	{"NewClient idempotent, hedged, per-attempt timeout", func(t *testing.T, reg *health.Memory) (*grpc.ClientConn, error) {
		p, err := retry.New(retry.WithIdempotent("*"), retry.WithHedging(20*time.Millisecond, "*"), retry.WithPerAttemptTimeout(10*time.Second))
		if err != nil {
			return nil, err
		}
		return rpcguard.NewClient("grpc.testing", reg, rpcguard.WithRetry(p), rpcguard.WithDialOptions(grpc.WithTransportCredentials(insecure.NewCredentials())))
	}},
	{"piece by piece", func(t *testing.T, reg *health.Memory) (*grpc.ClientConn, error) {
		return piecesClient(reg, `{"loadBalancingConfig":[{"rpcguard_selector":{"strategy":"p2c","ejection":{}}}]}`)
	}},
	{"piece by piece on round_robin", func(t *testing.T, reg *health.Memory) (*grpc.ClientConn, error) {
		return piecesClient(reg, `{"loadBalancingConfig":[{"round_robin":{}}]}`)
	}},
}

// piecesClient is the quick start's piece-by-piece client: each engine's
// own interceptors, in the stack's order.
func piecesClient(reg *health.Memory, serviceConfig string) (*grpc.ClientConn, error) {
	tg, err := tracing.New()
	if err != nil {
		return nil, err
	}
	brk, err := breaker.New(breaker.WithNamespace("interop-pieces"))
	if err != nil {
		return nil, err
	}
	p, err := retry.New(retry.WithIdempotent("*"))
	if err != nil {
		return nil, err
	}
	rb, err := selector.NewResolverBuilder(reg)
	if err != nil {
		return nil, err
	}
	return grpc.NewClient("rpcguard:///grpc.testing", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(rb),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithChainUnaryInterceptor(tg.UnaryClientInterceptor(), brk.UnaryClientInterceptor(), p.UnaryClientInterceptor(), tg.AttemptUnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(tg.StreamClientInterceptor(), brk.StreamClientInterceptor(), p.StreamClientInterceptor(), tg.AttemptStreamClientInterceptor()))
}

// startInteropNodes starts n interop servers on 127.0.0.1, registered in a
// memory registry, with rpcguard's server interceptors (tracing, a breaker
// and a load shedder) if guarded.
func startInteropNodes(t *testing.T, n int, guarded bool) *health.Memory {
	reg, err := health.NewMemory()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	s, err := stack.New()
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		var opts []grpc.ServerOption
		if guarded {
			opts = append(opts, grpc.ChainUnaryInterceptor(s.Tracing().UnaryServerInterceptor(), s.Breaker().UnaryServerInterceptor()),
				grpc.ChainStreamInterceptor(s.Tracing().StreamServerInterceptor(), s.Breaker().StreamServerInterceptor()))
			// A load shedder in the path, its tap included; its target so
			// high that a loaded machine never makes it shed: what is
			// tested is that admitting changes nothing a caller sees.
			lim, err := shed.New(shed.WithTarget(time.Second))
			if err != nil {
				t.Fatal(err)
			}
			opts = append(opts, lim.ServerOptions()...)
		}
		srv := grpc.NewServer(opts...)
		testgrpc.RegisterTestServiceServer(srv, interop.NewTestServer())
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)
		node := selector.Node{ID: fmt.Sprintf("interop-%d", i), Addr: lis.Addr().String()}
		if err := reg.Register(context.Background(), "grpc.testing", node, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

// TestInterop runs the matrix: case × stack × topology × server.
func TestInterop(t *testing.T) {
	for _, nodes := range []int{1, 3} {
		for _, guarded := range []bool{false, true} {
			reg := startInteropNodes(t, nodes, guarded)
			for _, st := range interopStacks {
				name := fmt.Sprintf("%d nodes/server guarded %v/%s", nodes, guarded, st.name)
				t.Run(name, func(t *testing.T) {
					cc, err := st.client(t, reg)
					if err != nil {
						t.Fatal(err)
					}
					defer cc.Close()
					dial := func() (*grpc.ClientConn, func()) {
						c, err := st.client(t, reg)
						if err != nil {
							panic(interopFatal{err.Error()})
						}
						return c, func() { _ = c.Close() }
					}
					for _, c := range interopCases {
						t.Run(c.name, func(t *testing.T) {
							ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
							defer cancel()
							defer func() {
								if r := recover(); r != nil {
									f, ok := r.(interopFatal)
									if !ok {
										panic(r)
									}
									t.Fatalf("interop case failed: %s", f.msg)
								}
							}()
							c.run(ctx, cc, dial)
						})
					}
				})
			}
		}
	}
}

// inputRecorder serves StreamingInputCall and counts the streams whose
// client's half-close (io.EOF) reached it.
type inputRecorder struct {
	testgrpc.UnimplementedTestServiceServer
	eofs atomic.Int32
}

func (r *inputRecorder) StreamingInputCall(stream testgrpc.TestService_StreamingInputCallServer) error {
	for {
		if _, err := stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				r.eofs.Add(1)
			}
			return stream.SendAndClose(&testgrpc.StreamingInputCallResponse{})
		}
	}
}

// TestCancelledStreamSendsNothingMore is cancel_after_begin made
// deterministic: once the caller cancels, a CloseSend must not reach the
// server, or the server's answer could come back as an OK for a call the
// caller cancelled (CI saw it: gRPC ends the stream on its own goroutine,
// and the stack's end functions, which run when ctx ends too, delayed it).
func TestCancelledStreamSendsNothingMore(t *testing.T) {
	for _, st := range interopStacks {
		t.Run(st.name, func(t *testing.T) {
			rec := &inputRecorder{}
			srv := grpc.NewServer()
			testgrpc.RegisterTestServiceServer(srv, rec)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = srv.Serve(lis) }()
			defer srv.Stop()
			reg, err := health.NewMemory()
			if err != nil {
				t.Fatal(err)
			}
			defer reg.Close()
			if err := reg.Register(context.Background(), "grpc.testing", selector.Node{ID: "rec", Addr: lis.Addr().String()}, time.Hour); err != nil {
				t.Fatal(err)
			}
			cc, err := st.client(t, reg)
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			for range 300 {
				ctx, cancel := context.WithCancel(context.Background())
				stream, err := testgrpc.NewTestServiceClient(cc).StreamingInputCall(ctx)
				if err != nil {
					t.Fatal(err)
				}
				cancel()
				if _, err := stream.CloseAndRecv(); status.Code(err) != codes.Canceled {
					t.Fatalf("CloseAndRecv after cancel: %v, want Canceled", err)
				}
			}
			srv.GracefulStop() // every handler has returned
			if n := rec.eofs.Load(); n > 0 {
				t.Errorf("%d of 300 cancelled streams' half-close reached the server", n)
			}
		})
	}
}
