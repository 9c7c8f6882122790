package gomicro_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	micro "go-micro.dev/v4"
	"go-micro.dev/v4/broker"
	"go-micro.dev/v4/client"
	"go-micro.dev/v4/logger"
	"go-micro.dev/v4/registry"
	mselector "go-micro.dev/v4/selector"
	"go-micro.dev/v4/server"
	"go-micro.dev/v4/transport"

	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/gomicro"
	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
)

// The one line: a go-micro service built with ServiceOptions calls a
// service with a dead node registered, and no call fails.
func TestServiceOptions(t *testing.T) {
	reg, brk, tr := registry.NewMemoryRegistry(), broker.NewMemoryBroker(), transport.NewHTTPTransport()
	for _, id := range []string{"greeter-0", "greeter-1"} {
		startMicro(t, id, reg, brk)
	}
	dead := &registry.Node{Id: "greeter-dead", Address: testcluster.DeadAddr(t)}
	if err := reg.Register(&registry.Service{Name: "greeter", Nodes: []*registry.Node{dead}}); err != nil {
		t.Fatal(err)
	}
	policy, err := retry.New(retry.WithIdempotent("Greeter.*"), retry.WithPerAttemptTimeout(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	b, err := breaker.New(breaker.WithNamespace(namespace()))
	if err != nil {
		t.Fatal(err)
	}
	rg, closeRG, err := gomicro.ServiceOptions(reg, gomicro.WithRetry(policy), gomicro.WithBreaker(b))
	if err != nil {
		t.Fatal(err)
	}
	defer closeRG()
	// Everything explicit: go-micro's defaults are global (never
	// service.Init() in a test: it parses flags).
	srv := server.NewServer(server.Name("caller"), server.Id("caller-0"), server.Address("127.0.0.1:0"),
		server.Registry(reg), server.Broker(brk), server.Transport(tr))
	cli := client.NewClient(client.Registry(reg), client.Broker(brk), client.Transport(tr), client.ContentType("application/json"))
	svc := micro.NewService(append([]micro.Option{micro.Name("caller"), micro.Client(cli), micro.Server(srv),
		micro.Registry(reg), micro.Broker(brk), micro.Transport(tr)}, rg...)...)
	for i := range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var rsp Rsp
		err := svc.Client().Call(ctx, svc.Client().NewRequest("greeter", "Greeter.Hello", &Req{Name: "x"}), &rsp)
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
}

// ServiceOptions takes the selector's options (here round robin: 30 calls
// over 3 nodes are 10 each), the wrappers refuse them, and what would undo
// or bypass rpcguard's selector is said in a warning: a micro.Selector
// after ServiceOptions (when the service starts), go-micro's select
// strategies (the roundrobin wrapper's; at the first such Select).
func TestServiceOptionsSelectorChoices(t *testing.T) {
	log := &captureLogger{}
	prev := logger.DefaultLogger
	logger.DefaultLogger = log // go-micro's own default logger prints to stdout, whatever its output option
	t.Cleanup(func() { logger.DefaultLogger = prev })

	if _, err := gomicro.NewClientWrapper(gomicro.WithSelectorOptions(selector.WithStrategy(selector.RoundRobin))); err == nil {
		t.Fatal("a client wrapper took WithSelectorOptions")
	}
	reg, brk, tr := registry.NewMemoryRegistry(), broker.NewMemoryBroker(), transport.NewHTTPTransport()
	var servers []*Greeter
	for _, id := range []string{"greeter-0", "greeter-1", "greeter-2"} {
		servers = append(servers, startMicro(t, id, reg, brk))
	}
	newService := func(name string, after ...micro.Option) micro.Service {
		rg, closeRG, err := gomicro.ServiceOptions(reg, gomicro.WithBreaker(newBreaker(t)),
			gomicro.WithSelectorOptions(selector.WithStrategy(selector.RoundRobin)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = closeRG() })
		srv := server.NewServer(server.Name(name), server.Id(name+"-0"), server.Address("127.0.0.1:0"),
			server.Registry(reg), server.Broker(brk), server.Transport(tr))
		cli := client.NewClient(client.Registry(reg), client.Broker(brk), client.Transport(tr), client.ContentType("application/json"), client.PoolSize(0))
		ctx, stop := context.WithCancel(context.Background())
		started, ran := make(chan struct{}), make(chan error, 1)
		svc := micro.NewService(append(append([]micro.Option{micro.Name(name), micro.Client(cli), micro.Server(srv),
			micro.Registry(reg), micro.Broker(brk), micro.Transport(tr), micro.Context(ctx), micro.HandleSignal(false)}, rg...),
			append(after, micro.AfterStart(func() error { close(started); return nil }))...)...)
		go func() { ran <- svc.Run() }()
		select {
		case <-started:
		case err := <-ran:
			t.Fatalf("the service did not start: %v", err)
		}
		t.Cleanup(func() { stop(); <-ran })
		return svc
	}
	svc := newService("caller")
	for range 30 {
		if _, err := hello(svc.Client(), "greeter", "x"); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range servers {
		if n := s.calls.Load(); n != 10 {
			t.Fatalf("round robin: a node served %d of 30 calls over 3 nodes, want 10", n)
		}
	}
	if strings.Contains(log.String(), "gomicro") {
		t.Fatalf("a warning with rpcguard's own selector: %s", log.String())
	}

	plain := mselector.NewSelector(mselector.Registry(reg))
	t.Cleanup(func() { _ = plain.Close() })
	newService("replaced", micro.Selector(plain))
	if !strings.Contains(log.String(), "a micro.Selector after ServiceOptions replaced it") {
		t.Fatalf("no warning when a later micro.Selector replaced rpcguard's: %q", log.String())
	}

	roundrobin := func(next client.Client) client.Client { return &strategyClient{next} }
	rr := newService("roundrobin", micro.WrapClient(roundrobin))
	for range 3 {
		if _, err := hello(rr.Client(), "greeter", "x"); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(log.String(), "go-micro select strategies and filters"); n != 1 {
		t.Fatalf("%d warnings for go-micro's select strategy, want 1: %q", n, log.String())
	}
}

// strategyClient adds a go-micro select strategy to every call, as
// go-micro's roundrobin wrapper does.
type strategyClient struct{ client.Client }

func (s *strategyClient) Call(ctx context.Context, req client.Request, rsp interface{}, opts ...client.CallOption) error {
	return s.Client.Call(ctx, req, rsp, append(opts, client.WithSelectOption(mselector.WithStrategy(mselector.RoundRobin)))...)
}

// captureLogger is a go-micro logger that keeps what is logged at warning
// level or above.
type captureLogger struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *captureLogger) Init(...logger.Option) error                 { return nil }
func (l *captureLogger) Options() logger.Options                     { return logger.Options{Level: logger.WarnLevel} }
func (l *captureLogger) Fields(map[string]interface{}) logger.Logger { return l }
func (l *captureLogger) Log(level logger.Level, v ...interface{}) {
	l.Logf(level, "%s", fmt.Sprint(v...))
}
func (l *captureLogger) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *captureLogger) Logf(level logger.Level, format string, v ...interface{}) {
	if !logger.WarnLevel.Enabled(level) {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format+"\n", v...)
}
