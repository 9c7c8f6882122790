// Package echo is a tiny gRPC Echo service for examples, demos and tests of
// rpcguard: unary, server-, client- and bidi-streaming methods, servers on
// 127.0.0.1 random ports that count their calls and take faults (a function
// of their own, or package faultinject's interceptors as server options),
// and client helpers for each method. Its service description is written by
// hand over protobuf's well-known StringValue, so nothing is generated. It
// imports neither package testing nor a leak checker: copy an example that
// uses it into your own module and it builds.
//
//	s, err := echo.Start("node-a", grpc.ChainUnaryInterceptor(inj.UnaryServerInterceptor("node-a")))
//	...
//	id, err := echo.Unary(ctx, cc) // the ID of the server that answered
package echo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Full method names of the Echo service.
const (
	Service            = "rpcguard.test.Echo"
	UnaryMethod        = "/rpcguard.test.Echo/Unary"
	ServerStreamMethod = "/rpcguard.test.Echo/ServerStream"
	BidiMethod         = "/rpcguard.test.Echo/Bidi"
	// ClientStreamMethod reads messages until the client closes its side,
	// then answers "ID:COUNT".
	ClientStreamMethod = "/rpcguard.test.Echo/ClientStream"
)

// Fault runs before a node handles a call (for a stream, before its first
// message). A non-nil error is the call's answer. It may block (latency) and
// should return when ctx ends.
type Fault func(ctx context.Context, method string) error

// Server is one running Echo server.
type Server struct {
	ID   string
	Addr string

	srv    *grpc.Server
	health *health.Server
	calls  atomic.Int64
	fault  atomic.Pointer[Fault]
	sfault atomic.Pointer[func(i int) error]

	healthOverride atomic.Pointer[healthpb.HealthServer]
	stopped        sync.Once
}

// Start starts a server named id on 127.0.0.1 and a random port, with
// server options (interceptors, say: faultinject's, tracing's, the
// breaker's). The caller stops it (Stop or Kill).
func Start(id string, opts ...grpc.ServerOption) (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	n := &Server{ID: id, Addr: lis.Addr().String(), srv: grpc.NewServer(opts...), health: health.NewServer()}
	n.srv.RegisterService(&serviceDesc, n)
	healthpb.RegisterHealthServer(n.srv, healthProxy{n})
	n.SetServing(true)
	go func() { _ = n.srv.Serve(lis) }()
	return n, nil
}

// Calls returns how many calls reached the node (faulted ones included).
func (n *Server) Calls() int64 { return n.calls.Load() }

// ResetCalls sets the node's call count back to zero.
func (n *Server) ResetCalls() { n.calls.Store(0) }

// SetFault makes the node run f before every call; nil clears it. It may be
// changed while calls run.
func (n *Server) SetFault(f Fault) {
	if f == nil {
		n.fault.Store(nil)
		return
	}
	n.fault.Store(&f)
}

// SetStreamFault makes the node's server streams run f before sending
// message i (from 0); a non-nil error ends the stream with it. nil clears.
func (n *Server) SetStreamFault(f func(i int) error) {
	if f == nil {
		n.sfault.Store(nil)
		return
	}
	n.sfault.Store(&f)
}

// RegisterHealth serves hs as the node's grpc.health.v1 service instead of
// its own. Call it before the first health check.
func (n *Server) RegisterHealth(hs healthpb.HealthServer) { n.healthOverride.Store(&hs) }

// SetServing sets the node's grpc.health.v1 status (for every service name,
// "" included). Nodes start SERVING.
func (n *Server) SetServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	n.health.SetServingStatus("", st)
	n.health.SetServingStatus(Service, st)
}

// Stop stops the node gracefully: it refuses new calls and waits for the
// running ones.
func (n *Server) Stop() { n.stopped.Do(func() { n.health.Shutdown(); n.srv.GracefulStop() }) }

// Kill stops the node at once: its listener and connections close and
// running calls fail.
func (n *Server) Kill() { n.stopped.Do(func() { n.health.Shutdown(); n.srv.Stop() }) }

// Unary calls the Echo service's unary method and returns the ID of the node
// that answered.
func Unary(ctx context.Context, cc grpc.ClientConnInterface, opts ...grpc.CallOption) (string, error) {
	reply := new(wrapperspb.StringValue)
	err := cc.Invoke(ctx, UnaryMethod, wrapperspb.String("ping"), reply, opts...)
	return reply.GetValue(), err
}

// ServerStream asks for n messages and returns the ones received ("id:i").
func ServerStream(ctx context.Context, cc grpc.ClientConnInterface, n int, opts ...grpc.CallOption) ([]string, error) {
	s, err := cc.NewStream(ctx, &serviceDesc.Streams[0], ServerStreamMethod, opts...)
	if err != nil {
		return nil, err
	}
	if err := s.SendMsg(wrapperspb.String(strconv.Itoa(n))); err != nil {
		return nil, err
	}
	if err := s.CloseSend(); err != nil {
		return nil, err
	}
	var got []string
	for {
		m := new(wrapperspb.StringValue)
		if err := s.RecvMsg(m); err != nil {
			if errors.Is(err, io.EOF) {
				return got, nil
			}
			return got, err
		}
		got = append(got, m.GetValue())
	}
}

// ClientStream sends msgs on a client stream and returns the answer
// ("ID:COUNT"), as generated code's CloseAndRecv does.
func ClientStream(ctx context.Context, cc grpc.ClientConnInterface, msgs int, opts ...grpc.CallOption) (string, error) {
	s, err := cc.NewStream(ctx, &serviceDesc.Streams[2], ClientStreamMethod, opts...)
	if err != nil {
		return "", err
	}
	for i := range msgs {
		if err := s.SendMsg(wrapperspb.String(strconv.Itoa(i))); err != nil {
			break // io.EOF: the status comes from RecvMsg
		}
	}
	return closeAndRecv(s)
}

// UnaryStream calls the unary method through a stream with neither side
// streaming (as grpc.Invoke does inside): one message each way.
func UnaryStream(ctx context.Context, cc grpc.ClientConnInterface, opts ...grpc.CallOption) (string, error) {
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{}, UnaryMethod, opts...)
	if err != nil {
		return "", err
	}
	if err := s.SendMsg(wrapperspb.String("ping")); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	return closeAndRecv(s)
}

// closeAndRecv closes the send side and reads the one answer.
func closeAndRecv(s grpc.ClientStream) (string, error) {
	if err := s.CloseSend(); err != nil {
		return "", err
	}
	m := new(wrapperspb.StringValue)
	if err := s.RecvMsg(m); err != nil {
		return "", err
	}
	return m.GetValue(), nil
}

// Bidi sends msgs on a bidi stream, reading each echo, and returns them.
func Bidi(ctx context.Context, cc grpc.ClientConnInterface, msgs int, opts ...grpc.CallOption) ([]string, error) {
	s, err := cc.NewStream(ctx, &serviceDesc.Streams[1], BidiMethod, opts...)
	if err != nil {
		return nil, err
	}
	var got []string
	for i := range msgs {
		if err := s.SendMsg(wrapperspb.String(strconv.Itoa(i))); err != nil {
			break
		}
		m := new(wrapperspb.StringValue)
		if err := s.RecvMsg(m); err != nil {
			return got, err
		}
		got = append(got, m.GetValue())
	}
	if err := s.CloseSend(); err != nil {
		return got, err
	}
	if err := s.RecvMsg(new(wrapperspb.StringValue)); !errors.Is(err, io.EOF) {
		return got, err
	}
	return got, nil
}

// StreamDescs returns the Echo service's stream descriptions (server
// stream, bidi, then client stream), for callers that open streams
// themselves.
func StreamDescs() []grpc.StreamDesc { return serviceDesc.Streams }

type echoServer interface{}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: Service,
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			n := srv.(*Server)
			req := new(wrapperspb.StringValue)
			if err := dec(req); err != nil {
				return nil, err
			}
			handle := func(ctx context.Context, _ any) (any, error) {
				if err := n.enter(ctx, UnaryMethod); err != nil {
					return nil, err
				}
				return wrapperspb.String(n.ID), nil
			}
			if interceptor == nil {
				return handle(ctx, req)
			}
			return interceptor(ctx, req, &grpc.UnaryServerInfo{Server: srv, FullMethod: UnaryMethod}, handle)
		},
	}},
	Streams: []grpc.StreamDesc{
		{StreamName: "ServerStream", ServerStreams: true, Handler: func(srv any, ss grpc.ServerStream) error {
			n := srv.(*Server)
			req := new(wrapperspb.StringValue)
			if err := ss.RecvMsg(req); err != nil {
				return err
			}
			count, err := strconv.Atoi(req.GetValue())
			if err != nil {
				return fmt.Errorf("testcluster: bad count %q", req.GetValue())
			}
			if err := n.enter(ss.Context(), ServerStreamMethod); err != nil {
				return err
			}
			for i := range count {
				if f := n.sfault.Load(); f != nil {
					if err := (*f)(i); err != nil {
						return err
					}
				}
				if err := ss.SendMsg(wrapperspb.String(n.ID + ":" + strconv.Itoa(i))); err != nil {
					return err
				}
			}
			return nil
		}},
		{StreamName: "Bidi", ServerStreams: true, ClientStreams: true, Handler: func(srv any, ss grpc.ServerStream) error {
			n := srv.(*Server)
			if err := n.enter(ss.Context(), BidiMethod); err != nil {
				return err
			}
			for {
				m := new(wrapperspb.StringValue)
				if err := ss.RecvMsg(m); err != nil {
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
				if err := ss.SendMsg(wrapperspb.String(n.ID + ":" + m.GetValue())); err != nil {
					return err
				}
			}
		}},
		{StreamName: "ClientStream", ClientStreams: true, Handler: func(srv any, ss grpc.ServerStream) error {
			n := srv.(*Server)
			if err := n.enter(ss.Context(), ClientStreamMethod); err != nil {
				return err
			}
			count := 0
			for {
				if err := ss.RecvMsg(new(wrapperspb.StringValue)); err != nil {
					if errors.Is(err, io.EOF) {
						return ss.SendMsg(wrapperspb.String(n.ID + ":" + strconv.Itoa(count)))
					}
					return err
				}
				count++
			}
		}},
	},
}

func (n *Server) enter(ctx context.Context, method string) error {
	n.calls.Add(1)
	if f := n.fault.Load(); f != nil {
		return (*f)(ctx, method)
	}
	return nil
}

// healthProxy serves the node's health server, or the one RegisterHealth
// set.
type healthProxy struct{ n *Server }

func (p healthProxy) server() healthpb.HealthServer {
	if hs := p.n.healthOverride.Load(); hs != nil {
		return *hs
	}
	return p.n.health
}

func (p healthProxy) Check(ctx context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return p.server().Check(ctx, r)
}

func (p healthProxy) List(ctx context.Context, r *healthpb.HealthListRequest) (*healthpb.HealthListResponse, error) {
	return p.server().List(ctx, r)
}

func (p healthProxy) Watch(r *healthpb.HealthCheckRequest, s healthpb.Health_WatchServer) error {
	return p.server().Watch(r, s)
}
