package gomicro_test

import (
	"context"
	"testing"
	"time"

	merrors "go-micro.dev/v4/errors"
	"go-micro.dev/v4/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/shed"
)

// TestShedGoMicro: a handler wrapper with WithShedder refuses requests that
// waited in a standing queue with 429 (ResourceExhausted) before the
// handler runs, and serves those that did not wait. go-micro does not say
// when a request arrived: an outer wrapper stamps it here, 10 ms before
// the handler wrapper, as a queue would.
func TestShedGoMicro(t *testing.T) {
	l, err := shed.New()
	if err != nil {
		t.Fatal(err)
	}
	hw, err := gomicro.NewHandlerWrapper(gomicro.WithShedder(l))
	if err != nil {
		t.Fatal(err)
	}
	var wait time.Duration
	stamp := func(h server.HandlerFunc) server.HandlerFunc {
		return func(ctx context.Context, req server.Request, rsp interface{}) error {
			return h(shed.Arrived(ctx, time.Now().Add(-wait)), req, rsp)
		}
	}
	f := newFleet(t, 1, nil, server.WrapHandler(stamp), server.WrapHandler(hw)) // the first outermost
	for range 20 {
		if _, err := f.call("x"); err != nil {
			t.Fatalf("a request that did not wait: %v", err)
		}
	}
	wait = 10 * time.Millisecond
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); {
		if _, err = f.call("x"); err != nil {
			break
		}
	}
	if me := merrors.FromError(err); me.Code != 429 || status.Code(gomicro.FromMicro(err)) != codes.ResourceExhausted {
		t.Fatalf("refusal %v, want a go-micro 429 (ResourceExhausted)", err)
	}
	if st := l.Snapshot(); st.Refused == 0 || st.Admitted != f.servers[0].calls.Load() {
		t.Fatalf("handler ran %d times, stats %+v: want once per admitted request", f.servers[0].calls.Load(), st)
	}
}

// WithShedder is a server's option: a client or call wrapper refuses it,
// and a nil Limiter is an error.
func TestShedderIsAServersOption(t *testing.T) {
	l, err := shed.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gomicro.NewClientWrapper(gomicro.WithShedder(l)); err == nil {
		t.Error("NewClientWrapper took WithShedder")
	}
	if _, err := gomicro.NewCallWrapper(gomicro.WithShedder(l)); err == nil {
		t.Error("NewCallWrapper took WithShedder")
	}
	if _, err := gomicro.NewHandlerWrapper(gomicro.WithShedder(nil)); err == nil {
		t.Error("WithShedder(nil) was taken")
	}
}
