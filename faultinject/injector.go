package faultinject

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rpcguard/rpcguard/internal/ctxwait"
	"github.com/rpcguard/rpcguard/outcome"
	"github.com/rpcguard/rpcguard/selector"
)

// Injector applies a set of rules. It is safe for concurrent use; the rules
// can be replaced while calls run.
type Injector struct {
	seed   uint64
	header string // header activation: "" when off
	rules  atomic.Pointer[[]*compiled]
	hooks  Hooks
}

// Hooks observe an Injector. Each may be nil and must not block.
type Hooks struct {
	OnFault func(rule string, service, method, node string)
}

type compiled struct {
	Rule
	index int
	calls atomic.Uint64 // matching calls so far
}

// Option configures an Injector.
type Option func(*Injector) error

// WithHeaderActivation lets a request fault itself: a request carrying the
// header (gRPC metadata or HTTP) with a comma-separated list of rule names
// gets those rules at rate 1, matching or not. Test-only: off by default.
func WithHeaderActivation(header string) Option {
	return func(i *Injector) error {
		if header == "" || header != strings.ToLower(header) {
			return fmt.Errorf("faultinject: WithHeaderActivation(%q): want a non-empty lowercase header name", header)
		}
		i.header = header
		return nil
	}
}

// WithHooks sets the hooks.
func WithHooks(h Hooks) Option {
	return func(i *Injector) error { i.hooks = h; return nil }
}

// New builds an Injector with a seed and rules.
func New(seed int64, rules []Rule, opts ...Option) (*Injector, error) {
	i := &Injector{seed: uint64(seed)}
	for _, o := range opts {
		if err := o(i); err != nil {
			return nil, err
		}
	}
	if err := i.SetRules(rules...); err != nil {
		return nil, err
	}
	return i, nil
}

// SetRules replaces the rules; calls that start afterwards see the new ones.
// It validates them all first and changes nothing on error.
func (i *Injector) SetRules(rules ...Rule) error {
	cs := make([]*compiled, len(rules))
	for k, r := range rules {
		if err := r.validate(k); err != nil {
			return err
		}
		cs[k] = &compiled{Rule: r, index: k}
	}
	i.rules.Store(&cs)
	return nil
}

// Step is one change of a Script: after After (from the script's start),
// the rules become Rules.
type Step struct {
	After time.Duration
	Rules []Rule
}

// Script replaces the rules step by step ("take node 2 down after 1 s"),
// on a goroutine of its own, until the steps are done or ctx ends; wait
// blocks until then and returns the first invalid step's error.
func (i *Injector) Script(ctx context.Context, steps ...Step) (wait func() error) {
	done := make(chan error, 1)
	go func() {
		start := time.Now()
		for _, s := range steps {
			if ctxwait.Sleep(ctx, time.Until(start.Add(s.After))) != nil {
				done <- nil
				return
			}
			if err := i.SetRules(s.Rules...); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	return func() error { return <-done }
}

// decide finds the faults for a call: the latency of every matching,
// firing rule adds up; the first firing rule with a fault decides the
// fault. activated names rules a header asked for. nodeRules limits the
// rules to those with a Node (a client's pick, where the node is known).
func (i *Injector) decide(service, method, node string, activated string, nodeRules bool) (delay time.Duration, fault *compiled) {
	rules := *i.rules.Load()
	for _, r := range rules {
		if nodeRules && r.Node == "" {
			continue
		}
		forced := activated != "" && r.Name != "" && hasName(activated, r.Name)
		if !forced && !r.matches(service, method, node) {
			continue
		}
		n := r.calls.Add(1)
		u := unit(i.seed, uint64(r.index), n)
		if !forced && u >= r.Rate {
			continue
		}
		if r.Latency != nil {
			delay += r.Latency(unit(i.seed^0x9e3779b97f4a7c15, uint64(r.index), n))
		}
		if fault == nil && (r.Code != codes.OK || r.HTTPStatus != 0 || r.Hang || r.Abort || r.Down) {
			fault = r
		}
		if h := i.hooks.OnFault; h != nil {
			h(r.Name, service, method, node)
		}
	}
	return delay, fault
}

func (r *compiled) matches(service, method, node string) bool {
	if r.Node != "" && r.Node != node {
		return false
	}
	if r.Service != "" && r.Service != service {
		return false
	}
	if r.Method != "" && r.Method != method && r.Method != "/"+service+"/"+method {
		return false
	}
	return true
}

func hasName(list, name string) bool {
	for _, n := range strings.Split(list, ",") {
		if strings.TrimSpace(n) == name {
			return true
		}
	}
	return false
}

// unit maps (seed, rule, n) to a uniform number in [0, 1): splitmix64.
func unit(seed, rule, n uint64) float64 {
	x := seed + rule*0xbf58476d1ce4e5b9 + n*0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return float64(x>>11) / (1 << 53)
}

// Errors of injected faults; errors.Is finds them in what Apply and the
// client interceptors return (a server's answer crosses the wire as a gRPC
// status only). A Down fault on a client never reached the node: its error
// also answers errors.Is(err, syscall.ECONNREFUSED), so that rpcguard's
// retry treats it as a refused connection and retries even a call that is
// not idempotent (on a server, see Rule.Down). Every injected error answers
// status.Code.
var (
	ErrDown    = errors.New("faultinject: node down (injected)")
	ErrAborted = errors.New("faultinject: connection aborted (injected)")
)

// injected is an injected gRPC error: it has the fault's status and wraps
// what it stands for.
type injected struct {
	st   *status.Status
	errs []error
}

func (e *injected) Error() string              { return e.st.Message() }
func (e *injected) GRPCStatus() *status.Status { return e.st }
func (e *injected) Unwrap() []error            { return e.errs }

// errorOf returns the error fault f answers with.
func errorOf(f *compiled) error {
	switch {
	case f.Down:
		return &injected{status.New(codes.Unavailable, ErrDown.Error()), []error{ErrDown, syscall.ECONNREFUSED}}
	case f.Abort:
		return &injected{status.New(codes.Unavailable, ErrAborted.Error()), []error{ErrAborted}}
	case f.HTTPStatus != 0:
		return &httpError{Status: f.HTTPStatus, Rule: f.Name}
	}
	return status.Errorf(f.Code, "faultinject: %s (injected by rule %q)", f.Code, f.Name)
}

// Apply runs the faults for one call of any client or server: it waits the
// injected latency (or until ctx ends) and returns the injected error, or
// nil to let the call go on. service, method and node are matched against
// the rules; activated is the header's value when header activation is on
// ("" otherwise).
func (i *Injector) Apply(ctx context.Context, service, method, node, activated string) error {
	delay, f := i.decide(service, method, node, activated, false)
	return enact(ctx, delay, f)
}

// enact waits delay (or until ctx ends), then answers with f's error; a
// Hang holds until ctx ends.
func enact(ctx context.Context, delay time.Duration, f *compiled) error {
	if err := ctxwait.Sleep(ctx, delay); err != nil {
		return status.FromContextError(err).Err()
	}
	if f == nil {
		return nil
	}
	if f.Hang {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	return errorOf(f)
}

// httpError is an injected HTTP status (the HTTP middleware writes it).
type httpError struct {
	Status int
	Rule   string
}

func (e *httpError) Error() string {
	return fmt.Sprintf("faultinject: HTTP %d (injected by rule %q)", e.Status, e.Rule)
}

// GRPCStatus maps the status to the gRPC code of its meaning (503
// Unavailable, 504 DeadlineExceeded, 429 ResourceExhausted, 404 NotFound,
// other 5xx Internal, ...).
func (e *httpError) GRPCStatus() *status.Status {
	return status.New(outcome.FromHTTP(e.Status), e.Error())
}

// nodeFault is what a pick decided for the rules with a Node.
type nodeFault struct {
	delay time.Duration
	fault *compiled
}

// AtPick is the client side of the faults for a transport whose attempts
// pick their node with rpcguard's selector (the gRPC balancer, a
// Selector's Pick): it applies now the rules without a Node to a call of
// service and method (activated as Apply says), and returns ctx with a pick
// check (selector.WithPickCheck) that decides the rules with a Node for
// the node the pick chooses: Down, Code, HTTPStatus and Abort fail the pick
// as a refused connection (the node tried and failed, the attempt never
// sent). Call after with the attempt's context and error once it is over:
// a fault that failed the pick comes back as its own error, a node's Hang
// and Latency apply then.
func (i *Injector) AtPick(ctx context.Context, service, method, activated string) (_ context.Context, after func(ctx context.Context, err error) error, _ error) {
	if err := i.Apply(ctx, service, method, "", activated); err != nil {
		return ctx, nil, err
	}
	svc, m := service, method
	nf := &nodeFault{}
	ctx = selector.WithPickCheck(ctx, func(n selector.Node) error {
		nf.delay, nf.fault = i.decide(svc, m, n.ID, "", true)
		if f := nf.fault; f != nil && !f.Hang {
			return errorOf(f)
		}
		return nil
	})
	return ctx, nf.after, nil
}

// after finishes an attempt that a node rule may fault: a fault that failed
// the pick comes back as its own error (gRPC carried only its status); a
// Hang and the Latency apply once the node answered.
func (nf *nodeFault) after(ctx context.Context, err error) error {
	f := nf.fault
	if f != nil && !f.Hang {
		if err != nil {
			return errorOf(f)
		}
		return nil // the pick that failed was not this attempt's last
	}
	if ferr := enact(ctx, nf.delay, f); ferr != nil {
		return ferr
	}
	return err
}
