package health

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	grpchealth "google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/rpcguard/rpcguard/internal/ctxwait"
	"github.com/rpcguard/rpcguard/internal/registry"
	"github.com/rpcguard/rpcguard/selector"
)

// Registrar keeps one node registered: it registers on Start, renews the
// registration every interval (with jitter), deregisters when the health
// check fails (once; it registers again when the check passes) and on Stop.
// Registry errors are retried with backoff and reported through a hook.
type Registrar struct {
	reg     Registry
	service string
	node    selector.Node
	o       registrarOptions
	hs      *grpchealth.Server

	mu         sync.Mutex
	registered bool // the node is in the registry, as far as the registrar knows
	stats      RegistrarStats
	cancel     context.CancelFunc
	done       chan struct{}
}

// RegistrarHooks observe a Registrar. Each may be nil and must not block.
type RegistrarHooks struct {
	OnRegister   func()          // the node was registered (first time, or again after a failed check)
	OnDeregister func(why error) // the node was deregistered: the check's error, or nil on Stop
	OnError      func(err error) // a registry call failed; it is retried
}

type registrarOptions struct {
	ttl, interval, checkTimeout, drain time.Duration
	jitter                             float64
	check                              func(ctx context.Context) error
	hooks                              RegistrarHooks
}

// RegistrarOption configures NewRegistrar. The defaults: a TTL of 30 s,
// renewals every third of the TTL (10 s: two renewals may fail before the
// node expires), ±10% jitter, no check, a check timeout of 5 s, and a drain
// of 1 s on Stop.
type RegistrarOption func(*registrarOptions) error

const defaultTTL = 30 * time.Second

// WithTTL sets how long the registry keeps the node without a renewal.
// Default 30 s.
func WithTTL(d time.Duration) RegistrarOption {
	return func(o *registrarOptions) error {
		if d <= 0 {
			return fmt.Errorf("health: WithTTL(%v): must be positive", d)
		}
		o.ttl = d
		return nil
	}
}

// WithInterval sets how often the node renews its registration; it must be
// below the TTL. Default: a third of the TTL.
func WithInterval(d time.Duration) RegistrarOption {
	return func(o *registrarOptions) error {
		if d <= 0 {
			return fmt.Errorf("health: WithInterval(%v): must be positive", d)
		}
		o.interval = d
		return nil
	}
}

// WithJitter spreads renewals by ±frac of the interval, in [0, 0.5].
func WithJitter(frac float64) RegistrarOption {
	return func(o *registrarOptions) error {
		if frac < 0 || frac > 0.5 {
			return fmt.Errorf("health: WithJitter(%v): must be in [0, 0.5]", frac)
		}
		o.jitter = frac
		return nil
	}
}

// WithCheck sets a health check run before every renewal; it gets a
// context bounded by timeout (0: 5 s).
func WithCheck(check func(ctx context.Context) error, timeout time.Duration) RegistrarOption {
	return func(o *registrarOptions) error {
		if check == nil {
			return fmt.Errorf("health: WithCheck: nil check")
		}
		if timeout < 0 {
			return fmt.Errorf("health: WithCheck: negative timeout %v", timeout)
		}
		o.check = check
		if timeout > 0 {
			o.checkTimeout = timeout
		}
		return nil
	}
}

// WithDrain sets how long Stop waits after deregistering (and turning the
// health status NOT_SERVING) before it returns, so that clients watching
// the registry stop sending before the server stops accepting. Default 1 s.
func WithDrain(d time.Duration) RegistrarOption {
	return func(o *registrarOptions) error {
		if d < 0 {
			return fmt.Errorf("health: WithDrain(%v): must not be negative", d)
		}
		o.drain = d
		return nil
	}
}

// WithRegistrarHooks sets the hooks.
func WithRegistrarHooks(h RegistrarHooks) RegistrarOption {
	return func(o *registrarOptions) error { o.hooks = h; return nil }
}

// NewRegistrar validates the registration: the service name, the node (ID,
// address), and an interval below the TTL.
func NewRegistrar(reg Registry, service string, node selector.Node, opts ...RegistrarOption) (*Registrar, error) {
	if reg == nil {
		return nil, fmt.Errorf("health: NewRegistrar: nil registry")
	}
	o, err := buildRegistrarOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := registry.ValidRegistration(service, node, o.ttl); err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	if o.interval == 0 { // not set: a third of the TTL
		o.interval = o.ttl / 3
	}
	if o.interval >= o.ttl {
		return nil, fmt.Errorf("health: the interval (%v) must be below the TTL (%v), or the node expires between renewals; a third of the TTL is a good interval", o.interval, o.ttl)
	}
	if float64(o.interval)*(1+o.jitter) >= float64(o.ttl) {
		return nil, fmt.Errorf("health: the interval (%v) with ±%.0f%% jitter reaches the TTL (%v); use a shorter interval or less jitter", o.interval, o.jitter*100, o.ttl)
	}
	r := &Registrar{reg: reg, service: service, node: node, o: o, hs: grpchealth.NewServer()}
	r.setServing(false)
	return r, nil
}

// buildRegistrarOptions applies opts over the defaults; what depends on
// the TTL is checked by NewRegistrar.
func buildRegistrarOptions(opts []RegistrarOption) (registrarOptions, error) {
	o := registrarOptions{ttl: defaultTTL, jitter: 0.1, checkTimeout: 5 * time.Second, drain: time.Second}
	for _, opt := range opts {
		if opt == nil {
			return o, fmt.Errorf("health: nil RegistrarOption")
		}
		if err := opt(&o); err != nil {
			return o, err
		}
	}
	return o, nil
}

// HealthServer is the grpc.health.v1 server whose status the registrar
// sets, for "" (the server as a whole) and the registered service's name:
// SERVING while registered, NOT_SERVING before Start, while the check
// fails and from the start of Stop. Register it on the gRPC server with
// healthpb.RegisterHealthServer.
func (r *Registrar) HealthServer() *grpchealth.Server { return r.hs }

func (r *Registrar) setServing(ok bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ok {
		st = healthpb.HealthCheckResponse_SERVING
	}
	r.hs.SetServingStatus("", st)
	r.hs.SetServingStatus(r.service, st)
}

// Start registers the node (running the check first, if any) and starts
// renewing it. It returns the first registration's error, if any; the
// registrar keeps trying in the background either way. Start once.
func (r *Registrar) Start(ctx context.Context) error {
	r.mu.Lock()
	if r.done != nil {
		r.mu.Unlock()
		return fmt.Errorf("health: Registrar.Start called twice")
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel, r.done = cancel, make(chan struct{})
	r.mu.Unlock()
	err := r.tick(lctx)
	go r.loop(lctx, err)
	return err
}

// loop renews the registration until its context ends.
func (r *Registrar) loop(ctx context.Context, lastErr error) {
	defer close(r.done)
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval, bo.MaxElapsedTime = r.o.interval/10, r.o.interval, 0
	for ctxwait.Sleep(ctx, r.next(lastErr, bo)) == nil {
		lastErr = r.tick(ctx)
	}
}

// next is the wait before the next tick: the interval with jitter, or a
// backoff (never above the interval) after an error.
func (r *Registrar) next(err error, bo *backoff.ExponentialBackOff) time.Duration {
	if err != nil {
		return min(bo.NextBackOff(), r.o.interval)
	}
	bo.Reset()
	j := 1 + r.o.jitter*(2*rand.Float64()-1)
	return time.Duration(float64(r.o.interval) * j)
}

// tick runs the check and registers, renews or deregisters accordingly:
// one action per tick, so a failing check never deregisters and registers
// again in the same tick.
func (r *Registrar) tick(ctx context.Context) error {
	var checkErr error
	if r.o.check != nil {
		cctx, cancel := context.WithTimeout(ctx, r.o.checkTimeout)
		checkErr = r.o.check(cctx)
		cancel()
	}
	r.mu.Lock()
	registered := r.registered
	r.mu.Unlock()
	// A registry that does not answer must not hold the loop past the
	// next renewal.
	ctx, cancel := context.WithTimeout(ctx, r.o.interval)
	defer cancel()
	switch {
	case checkErr != nil && registered:
		r.setServing(false)
		r.mu.Lock()
		r.stats.CheckFailures++
		r.mu.Unlock()
		if err := r.reg.Deregister(ctx, r.service, r.node.ID); err != nil {
			r.report(err)
			return err
		}
		r.setRegistered(false)
		if h := r.o.hooks.OnDeregister; h != nil {
			h(checkErr)
		}
		return nil
	case checkErr != nil:
		r.setServing(false)
		r.mu.Lock()
		r.stats.CheckFailures++
		r.mu.Unlock()
		return nil // stays out until the check passes
	}
	if err := r.reg.Register(ctx, r.service, r.node, r.o.ttl); err != nil {
		r.report(err)
		return err
	}
	r.mu.Lock()
	r.stats.Renewals++
	r.stats.LastRenewal = time.Now()
	r.mu.Unlock()
	r.setServing(true)
	if !registered {
		r.setRegistered(true)
		if h := r.o.hooks.OnRegister; h != nil {
			h()
		}
	}
	return nil
}

func (r *Registrar) setRegistered(v bool) {
	r.mu.Lock()
	r.registered = v
	r.mu.Unlock()
}

func (r *Registrar) report(err error) {
	r.mu.Lock()
	r.stats.Failures++
	r.stats.LastError = err.Error()
	r.mu.Unlock()
	if h := r.o.hooks.OnError; h != nil {
		h(err)
	}
}

// Stop ends the registration gracefully: it turns the health status
// NOT_SERVING, stops renewing, deregisters the node and waits the drain, so
// that clients stop sending before the caller stops its server (call Stop,
// then grpc.Server.GracefulStop). It returns the deregistration's error.
func (r *Registrar) Stop(ctx context.Context) error {
	r.setServing(false)
	r.halt()
	err := r.reg.Deregister(ctx, r.service, r.node.ID)
	if err == nil {
		r.setRegistered(false)
		if h := r.o.hooks.OnDeregister; h != nil {
			h(nil)
		}
	}
	_ = ctxwait.Sleep(ctx, r.o.drain) // the caller's ctx may cut the drain short
	return err
}

// Halt stops renewing without deregistering: what a crash looks like to
// the registry, which drops the node when its TTL passes. For tests and
// demos.
func (r *Registrar) Halt() { r.halt() }

func (r *Registrar) halt() {
	r.mu.Lock()
	cancel, done := r.cancel, r.done
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// RegistrarStats is what a Registrar knows of its registration, for
// observers (metrics, a debug page): a snapshot.
type RegistrarStats struct {
	Service    string
	Node       selector.Node
	Registered bool // in the registry, as far as the registrar knows
	// Renewals counts successful registrations and renewals, Failures the
	// registry calls that failed (LastError the last one's), CheckFailures
	// the ticks whose check failed.
	Renewals, Failures, CheckFailures int64
	LastRenewal                       time.Time
	LastError                         string
}

// Snapshot returns the registration's stats.
func (r *Registrar) Snapshot() RegistrarStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Service, st.Node, st.Registered = r.service, r.node, r.registered
	return st
}
