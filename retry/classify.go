package retry

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/selector"
)

// pickFailed reports whether err says that no node could be picked: the
// attempt never left the client.
func pickFailed(err error) bool {
	return errors.Is(err, selector.ErrAllTried) || errors.Is(err, selector.ErrNoNodes)
}

// retryable classifies an attempt's error (the attempt's own timeout is
// handled by the engine). Retryable by default: a failed pick, the
// configured gRPC codes (Unavailable), and, for errors without a gRPC
// status, transport failures.
func (p *Policy) retryable(err error) bool {
	r := p.byDefault(err)
	if p.cfg.retryIf != nil {
		return p.cfg.retryIf(err, r)
	}
	return r
}

// byDefault is the default rules' answer.
func (p *Policy) byDefault(err error) bool {
	if pickFailed(err) || isMarkedRetryable(err) {
		return true
	}
	if s, ok := status.FromError(err); ok {
		return p.cfg.codes[s.Code()] && !localLimit(err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ne net.Error
	return isNotSent(err) || errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// neverSent reports whether an attempt's error proves that it never reached
// a server.
func neverSent(err error) bool {
	return pickFailed(err) || isNotSent(err) || errors.Is(err, syscall.ECONNREFUSED)
}

// localLimit reports whether err is a ResourceExhausted that the client's
// own gRPC library made (a message over the size limit, received or to
// send), not a server's overload: the same request would fail the same way
// on any node, and it says nothing about the fleet's load.
func localLimit(err error) bool {
	s, ok := status.FromError(err)
	if !ok || s.Code() != codes.ResourceExhausted {
		return false
	}
	m := s.Message()
	return strings.HasPrefix(m, "grpc: received message") || strings.HasPrefix(m, "grpc: message after decompression") ||
		strings.HasPrefix(m, "grpc: message too large") || strings.HasPrefix(m, "trying to send message larger than max")
}
