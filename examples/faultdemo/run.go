package main

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opentracing/opentracing-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/rpcguard/rpcguard"
	"github.com/rpcguard/rpcguard/breaker"
	"github.com/rpcguard/rpcguard/echo"
	"github.com/rpcguard/rpcguard/faultinject"
	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/metrics"
	"github.com/rpcguard/rpcguard/retry"
	"github.com/rpcguard/rpcguard/selector"
	"github.com/rpcguard/rpcguard/tracing"
)

const (
	deadline   = 500 * time.Millisecond
	concurrent = 8
	ttl        = 2 * time.Second
	interval   = 500 * time.Millisecond
)

// result is one row of the table.
type result struct {
	Scenario        string  `json:"scenario"`
	Client          string  `json:"client"`
	Calls           int     `json:"calls"`
	SuccessPct      float64 `json:"success_pct"`
	P50MS           float64 `json:"p50_ms"`
	P99MS           float64 `json:"p99_ms"`
	AttemptsPerCall float64 `json:"attempts_per_call"`
	Breaker         string  `json:"breaker"`
	Note            string  `json:"note,omitempty"`
	// CrashToLastCallMS: crash-ttl only, from the crash to the last call
	// that reached the crashed node.
	CrashToLastCallMS float64 `json:"crash_to_last_call_ms,omitempty"`
}

// env is what all scenarios share: the registry and the tracer.
type env struct {
	registryName string
	newRegistry  func() (health.Registry, func(), error)
	tracer       opentracing.Tracer
	runFor       time.Duration // -for: drive each scenario for this long instead of a count of calls
	closers      []func()
	obs          *metrics.Observer // -debug: what the page and /metrics show; nil without
}

func newEnv(useEtcd bool, tracer opentracing.Tracer) (*env, error) {
	e := &env{registryName: "in-memory", tracer: tracer}
	e.newRegistry = func() (health.Registry, func(), error) {
		m, err := health.NewMemory(health.WithTick(20 * time.Millisecond))
		if err != nil {
			return nil, nil, err
		}
		return m, func() { _ = m.Close() }, nil
	}
	if useEtcd {
		if err := e.useEtcd(); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func (e *env) close() {
	for _, c := range e.closers {
		c()
	}
}

// cluster is a fresh 3-node cluster, registered.
type cluster struct {
	received   atomic.Int64 // attempts that reached a server, faulted or not
	nodes      []*echo.Server
	registrars []*health.Registrar
	inj        *faultinject.Injector
	reg        health.Registry
	closeReg   func()
	obs        *metrics.Observer // watching the registrars (-debug), or nil
}

func (e *env) startCluster(size int) (*cluster, error) {
	reg, closeReg, err := e.newRegistry()
	if err != nil {
		return nil, err
	}
	inj, err := faultinject.New(1, nil) // the scenario's rules come after the warm-up
	if err != nil {
		closeReg()
		return nil, err
	}
	c := &cluster{inj: inj, reg: reg, closeReg: closeReg}
	count := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		c.received.Add(1)
		return h(ctx, req)
	}
	for i := range size {
		id := fmt.Sprintf("node-%d", i)
		n, err := echo.Start(id, grpc.ChainUnaryInterceptor(count, inj.UnaryServerInterceptor(id)))
		if err != nil {
			c.stop()
			return nil, err
		}
		c.nodes = append(c.nodes, n)
		r, err := health.NewRegistrar(reg, "echo", selector.Node{ID: id, Addr: n.Addr},
			health.WithTTL(ttl), health.WithInterval(interval), health.WithDrain(0))
		if err != nil {
			c.stop()
			return nil, err
		}
		if err := r.Start(context.Background()); err != nil {
			c.stop()
			return nil, err
		}
		c.registrars = append(c.registrars, r)
		if e.obs != nil {
			e.obs.WatchRegistrar(r)
			c.obs = e.obs
		}
	}
	return c, nil
}

func (c *cluster) stop() {
	if c.obs != nil {
		c.obs.Unwatch("", c.registrars...)
	}
	for _, r := range c.registrars {
		r.Halt()
	}
	for _, n := range c.nodes {
		n.Kill()
	}
	c.closeReg()
}

func (c *cluster) served() int64 { return c.received.Load() }

// dial builds the client under test.
func (e *env) dial(sc scenario, client string, calls int, reg health.Registry) (*grpc.ClientConn, *breaker.Breaker, error) {
	creds := grpc.WithTransportCredentials(insecure.NewCredentials())
	if client == clientBare || client == clientRetry {
		rb, err := selector.NewResolverBuilder(reg)
		if err != nil {
			return nil, nil, err
		}
		opts := []grpc.DialOption{creds, grpc.WithResolvers(rb),
			grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`)}
		if client == clientRetry {
			policy, err := retry.New(retry.WithIdempotent("/" + echo.Service + "/*"))
			if err != nil {
				return nil, nil, err
			}
			opts[2] = grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"rpcguard_selector":{"strategy":"round_robin"}}]}`)
			opts = append(opts, grpc.WithChainUnaryInterceptor(policy.UnaryClientInterceptor()))
		}
		cc, err := grpc.NewClient("rpcguard:///echo", opts...)
		return cc, nil, err
	}
	tg, err := tracing.New(tracing.WithTracer(e.tracer))
	if err != nil {
		return nil, nil, err
	}
	// The circuit needs a volume of calls to judge: 20, or a tenth of a
	// short run's (-calls 50 tells the same story).
	brk, err := breaker.New(breaker.WithNamespace(fmt.Sprintf("faultdemo-%s-%d", sc.name, calls)),
		breaker.WithSettings(breaker.Settings{VolumeThreshold: max(5, min(20, calls/10)), SleepWindow: time.Second}))
	if err != nil {
		return nil, nil, err
	}
	ropts := []retry.Option{
		retry.WithIdempotent("/" + echo.Service + "/*"),
		retry.WithMaxAttempts(3),
		retry.WithPerAttemptTimeout(150 * time.Millisecond),
		retry.WithHedging(40*time.Millisecond, echo.UnaryMethod),
	}
	var watch []rpcguard.Option
	if e.obs != nil { // -debug: the page and /metrics show this client
		ropts = append(ropts, retry.WithHooks(e.obs.RetryHooks("rpcguard")))
		watch = append(watch, rpcguard.WithSelectorOptions(e.obs.Selector("echo")))
	}
	policy, err := retry.New(ropts...)
	if err != nil {
		return nil, nil, err
	}
	if e.obs != nil {
		e.obs.WatchBreaker("rpcguard", brk)
		e.obs.WatchPolicy("rpcguard", policy)
	}
	cc, err := rpcguard.NewClient("echo", reg, append(watch, rpcguard.WithTracing(tg), rpcguard.WithBreaker(brk), rpcguard.WithRetry(policy),
		rpcguard.WithDialOptions(creds))...)
	return cc, brk, err
}

// run plays one scenario with one client on a fresh cluster.
func (e *env) run(sc scenario, client string, calls int) (result, error) {
	size := sc.nodes
	if size == 0 {
		size = 3
	}
	c, err := e.startCluster(size)
	if err != nil {
		return result{}, err
	}
	defer c.stop()
	cc, brk, err := e.dial(sc, client, calls, c.reg)
	if err != nil {
		return result{}, err
	}
	defer cc.Close()
	if err := warmUp(cc, c); err != nil {
		return result{}, err
	}
	if err := c.inj.SetRules(sc.rules...); err != nil {
		return result{}, err
	}
	for _, i := range sc.dead {
		c.nodes[i].Kill()
	}
	if sc.capacity > 0 {
		for _, n := range c.nodes {
			n.SetFault(echo.Capacity(sc.capacity, 20*time.Millisecond))
		}
	}
	callers := concurrent
	if sc.callers > 0 {
		callers = sc.callers
	}
	base := c.served()
	var lastCall atomic.Int64
	ok, latencies, crashedAt := drive(sc, calls, callers, e.runFor, func(ctx context.Context) error {
		_, err := echo.Unary(ctx, cc)
		return err
	}, func() { c.crash(&lastCall) })
	made := len(latencies)
	r := result{Scenario: sc.name, Client: client, Calls: made,
		SuccessPct:      100 * float64(ok) / float64(made),
		AttemptsPerCall: float64(c.served()-base) / float64(made), Breaker: "-"}
	r.P50MS, r.P99MS = percentiles(latencies)
	if brk != nil {
		r.Breaker = "closed"
		if brk.IsOpen(echo.UnaryMethod) {
			r.Breaker = "open"
		}
	}
	if sc.recovers {
		// Round robin gives the node its third at once; what power of two
		// choices learned takes up to 5 s to go stale.
		wait, when := time.Duration(0), "right after"
		if client == clientRPCGuard {
			wait, when = 6*time.Second, "6 s after"
		}
		share, err := c.shareAfterRecovery(cc, wait)
		if err != nil {
			return result{}, err
		}
		r.Note = fmt.Sprintf("node-1's share of calls %s it recovered: %.0f%%", when, share)
	}
	if sc.ends && brk != nil {
		if err := c.inj.SetRules(); err != nil {
			return result{}, err
		}
		ended := time.Now()
		for brk.IsOpen(echo.UnaryMethod) && time.Since(ended) < 10*time.Second {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			_, _ = echo.Unary(ctx, cc)
			cancel()
			time.Sleep(20 * time.Millisecond) // paced calls, as light traffic would come
		}
		r.Note = fmt.Sprintf("the circuit closed %.2f s after the outage ended (sleep window 1 s)", time.Since(ended).Seconds())
	}
	var last time.Time
	if n := lastCall.Load(); n > 0 {
		last = time.Unix(0, n)
	}
	r.crashNote(sc, crashedAt, last)
	return r, nil
}

// crashNote says, in a crash scenario, when the last call reached the
// crashed node.
func (r *result) crashNote(sc scenario, crashedAt, lastCall time.Time) {
	if sc.crash && !lastCall.IsZero() {
		r.CrashToLastCallMS = msOf(lastCall.Sub(crashedAt))
		r.Note = fmt.Sprintf("last call to node-1 %.0f ms after its crash (TTL %v)", r.CrashToLastCallMS, ttl)
	}
}

// drive makes calls calls from callers goroutines, each with the demo's
// deadline; in a crash scenario, crash runs a third into the run. It
// returns the successes, every call's latency and when the crash came.
//
// With runFor set, the callers call for that long instead (the steady state
// past the start-up transient), however many calls it takes.
func drive(sc scenario, calls, callers int, runFor time.Duration, call func(ctx context.Context) error, crash func()) (int64, []time.Duration, time.Time) {
	var (
		next      atomic.Int64
		ok        atomic.Int64
		mu        sync.Mutex
		latencies []time.Duration
		crashedAt time.Time
		wg        sync.WaitGroup
	)
	crashAt := int64(calls / 3)
	end := time.Now().Add(runFor)
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if runFor > 0 && time.Now().After(end) || runFor == 0 && i > int64(calls) {
					return
				}
				if sc.crash && i == crashAt {
					mu.Lock()
					crashedAt = time.Now()
					mu.Unlock()
					crash()
				}
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				start := time.Now()
				err := call(ctx)
				took := time.Since(start)
				cancel()
				if err == nil {
					ok.Add(1)
				}
				mu.Lock()
				latencies = append(latencies, took)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return ok.Load(), latencies, crashedAt
}

// percentiles returns the p50 and p99 of latencies, in ms.
func percentiles(latencies []time.Duration) (p50, p99 float64) {
	slices.Sort(latencies)
	return msOf(latencies[len(latencies)/2]), msOf(latencies[len(latencies)*99/100])
}

// shareAfterRecovery lifts the faults, keeps light traffic going for wait
// (what a selector learned of a slow node may take that long to go stale),
// then makes 150 calls and returns node-1's share of them, in percent.
func (c *cluster) shareAfterRecovery(cc *grpc.ClientConn, wait time.Duration) (float64, error) {
	if err := c.inj.SetRules(); err != nil {
		return 0, err
	}
	for end := time.Now().Add(wait); time.Now().Before(end); {
		ctx, cancel := context.WithTimeout(context.Background(), deadline)
		_, _ = echo.Unary(ctx, cc)
		cancel()
		time.Sleep(20 * time.Millisecond) // light traffic: about 50 calls a second
	}
	before := c.nodes[1].Calls()
	var wg sync.WaitGroup
	for range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 150 / concurrent {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				_, _ = echo.Unary(ctx, cc)
				cancel()
			}
		}()
	}
	wg.Wait()
	return 100 * float64(c.nodes[1].Calls()-before) / float64(150/concurrent*concurrent), nil
}

// crash stops node-1's registrar without deregistering and freezes it: it
// accepts calls and never answers; lastCall records when one arrives.
func (c *cluster) crash(lastCall *atomic.Int64) {
	c.registrars[1].Halt()
	c.nodes[1].SetFault(func(ctx context.Context, _ string) error {
		lastCall.Store(time.Now().UnixNano())
		<-ctx.Done()
		return ctx.Err()
	})
}

// warmUp waits until the client has reached every node, so that every run
// starts from a connected client.
func warmUp(cc *grpc.ClientConn, c *cluster) error {
	deadlineAt := time.Now().Add(10 * time.Second)
	for {
		all := true
		for _, n := range c.nodes {
			all = all && n.Calls() > 0
		}
		if all {
			return nil
		}
		if time.Now().After(deadlineAt) {
			return fmt.Errorf("the client did not reach every node within 10 s")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, _ = echo.Unary(ctx, cc, grpc.WaitForReady(true))
		cancel()
	}
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
