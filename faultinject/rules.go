package faultinject

import (
	"fmt"
	"math"
	"time"

	"google.golang.org/grpc/codes"
)

// Rule describes one fault. Empty Service, Method and Node match anything.
type Rule struct {
	// Name identifies the rule (for header activation and reports).
	Name string
	// Service is a gRPC service ("pkg.Service"). HTTP requests have no
	// service: leave it empty for them.
	Service string
	// Method is a gRPC method name ("Get") or full method
	// ("/pkg.Service/Get"), or an HTTP method ("GET").
	Method string
	// Node is the ID of the node the fault applies to: on a server, the
	// node the injector runs on; on a client, the node rpcguard's selector
	// picked (see UnaryClientInterceptor); in Apply, the node it is given.
	Node string
	// Rate is the share of matching calls that are faulted, in [0, 1].
	Rate float64

	// What happens, at most one of: an error with Code (gRPC) or
	// HTTPStatus (HTTP); Hang (accept and never answer: a black hole);
	// Abort (the connection is cut); Down (the node is down). Where Down
	// acts decides what the client sees. On a client (a rule with Node,
	// through rpcguard's selector; Apply in a plain-API attempt) the call
	// never reaches the node: it fails as a refused connection, and even a
	// call that is not idempotent goes to another node. On a server the
	// request has arrived before any interceptor runs, so Down answers
	// Unavailable, as a node whose service is down behind a listener that
	// still accepts: to the client the call may have been sent, and only an
	// idempotent one is retried. For a node that refuses every client,
	// stop its server or put the rule on the clients.
	Code       codes.Code
	HTTPStatus int
	Hang       bool
	Abort      bool
	Down       bool
	// Latency is added before the call goes on (or before the error).
	Latency Distribution
}

// Distribution draws a latency from u, a uniform number in [0, 1).
type Distribution func(u float64) time.Duration

// Fixed is always d.
func Fixed(d time.Duration) Distribution { return func(float64) time.Duration { return d } }

// Uniform is uniform between lo and hi.
func Uniform(lo, hi time.Duration) Distribution {
	return func(u float64) time.Duration { return lo + time.Duration(u*float64(hi-lo)) }
}

// Exponential has the given mean (a long tail, like real latency).
func Exponential(mean time.Duration) Distribution {
	return func(u float64) time.Duration { return time.Duration(-math.Log(1-u) * float64(mean)) }
}

func (r Rule) validate(i int) error {
	where := fmt.Sprintf("faultinject: rule %d (%q)", i, r.Name)
	if r.Rate < 0 || r.Rate > 1 || r.Rate != r.Rate {
		return fmt.Errorf("%s: Rate must be in [0, 1], got %v", where, r.Rate)
	}
	kinds := 0
	for _, k := range []bool{r.Code != codes.OK, r.HTTPStatus != 0, r.Hang, r.Abort, r.Down} {
		if k {
			kinds++
		}
	}
	if kinds > 1 {
		return fmt.Errorf("%s: set at most one of Code, HTTPStatus, Hang, Abort and Down", where)
	}
	if kinds == 0 && r.Latency == nil {
		return fmt.Errorf("%s: the rule does nothing: set a fault or a Latency", where)
	}
	if r.Code > codes.Unauthenticated {
		return fmt.Errorf("%s: unknown gRPC code %d", where, r.Code)
	}
	if r.HTTPStatus != 0 && (r.HTTPStatus < 400 || r.HTTPStatus > 599) {
		return fmt.Errorf("%s: HTTPStatus must be an error status in 400..599, got %d", where, r.HTTPStatus)
	}
	return nil
}
