package faultinject

import (
	"context"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// split turns "/pkg.Service/Method" into its service and method.
func split(fullMethod string) (service, method string) {
	s, m, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return s, m
}

// activated returns the header-activation value of incoming (server) or
// outgoing (client) metadata, or "".
func (i *Injector) activated(md metadata.MD) string {
	if i.header == "" {
		return ""
	}
	return strings.Join(md.Get(i.header), ",")
}

// UnaryServerInterceptor injects the faults of node (the ID of the node the
// server runs as) before the handler runs. Hang keeps the call until its
// context ends; Down and Abort answer Unavailable before the handler runs
// (a gRPC handler cannot cut its transport, so the client cannot tell a
// server-side Down from an Unavailable answer: for a node that refuses
// connections, use a client-side rule with its Node, or stop the server).
func (i *Injector) UnaryServerInterceptor(node string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		svc, m := split(info.FullMethod)
		md, _ := metadata.FromIncomingContext(ctx)
		if err := i.Apply(ctx, svc, m, node, i.activated(md)); err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streams (the fault
// comes before the handler).
func (i *Injector) StreamServerInterceptor(node string) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		svc, m := split(info.FullMethod)
		md, _ := metadata.FromIncomingContext(ss.Context())
		if err := i.Apply(ss.Context(), svc, m, node, i.activated(md)); err != nil {
			return err
		}
		return handler(srv, ss)
	}
}

// UnaryClientInterceptor injects faults on the client. Rules without a
// Node act before the call is sent: a faulted call never reaches a server.
// Rules with a Node act on the node that rpcguard's selector picked (the
// rpcguard_selector balancer; with another balancer they never match): Down,
// Code, HTTPStatus and Abort fail the attempt at the pick with the fault's
// error, as a connection that was refused (the node counts as tried and
// failed, the attempt as never sent, so retry goes elsewhere); Hang lets the
// call reach the node and withholds its answer until the call's context
// ends; Latency is added once the node answered. Put it after the retry
// interceptor to fault attempts, before it to fault calls.
func (i *Injector) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		svc, m := split(method)
		md, _ := metadata.FromOutgoingContext(ctx)
		ctx, after, err := i.AtPick(ctx, svc, m, i.activated(md))
		if err != nil {
			return err
		}
		return after(ctx, invoker(ctx, method, req, reply, cc, opts...))
	}
}

// StreamClientInterceptor is UnaryClientInterceptor for streams: a node's
// Hang and Latency apply to the opening of the stream.
func (i *Injector) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		svc, m := split(method)
		md, _ := metadata.FromOutgoingContext(ctx)
		ctx, after, err := i.AtPick(ctx, svc, m, i.activated(md))
		if err != nil {
			return nil, err
		}
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err = after(ctx, err); err != nil {
			return nil, err
		}
		return cs, nil
	}
}
