package selector

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/attributes"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/base"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
	"google.golang.org/grpc/status"
)

// BalancerName is the name under which the package registers its gRPC
// balancer, once (the Go options the service config cannot carry, hooks
// and a classifier, reach it from the client's resolver:
// NewResolverBuilder's options). Choose it in the service config:
//
//	{"loadBalancingConfig": [{"rpcguard_selector": {
//	    "strategy": "round_robin",
//	    "ejection": {"consecutiveFailures": 5, "baseTime": "30s", "maxTime": "300s", "maxPercent": 50},
//	    "subset": {"size": 32, "minNodes": 200, "client": -1, "spares": 2},
//	    "reuseTried": false,
//	    "metadata": {"version": "v2"}
//	}}]}
//
// Every field is optional. "strategy" is "random", "round_robin" (default) or
// "p2c". "ejection", when present, enables outlier ejection; its missing
// fields take DefaultEjection's values; durations are Go or protobuf JSON
// durations ("30s", "1.5s", "250ms"). "subset" sets subsetting (see
// Subset; its missing fields take DefaultSubset's values, and "size": 0
// disables it; without "subset", DefaultSubset applies). "metadata" keeps the nodes whose
// metadata has every listed key and value. Unknown fields are errors.
//
// The picker avoids the nodes the call's record (NewRecord,
// UnaryClientInterceptor) holds, records the node it picks, and feeds every
// attempt's outcome back. Client-side health checking is honoured when the
// service config has a healthCheckConfig (and the program imports
// google.golang.org/grpc/health).
const BalancerName = "rpcguard_selector"

func init() {
	balancer.Register(&builder{name: BalancerName})
}

type builder struct {
	name string
}

func (b *builder) Name() string { return b.name }

// lbConfig is the balancer's service-config JSON.
type lbConfig struct {
	serviceconfig.LoadBalancingConfig `json:"-"`

	Strategy   Strategy          `json:"strategy,omitempty"`
	Ejection   json.RawMessage   `json:"ejection,omitempty"`
	Subset     *subsetJSON       `json:"subset,omitempty"`
	ReuseTried bool              `json:"reuseTried,omitempty"`
	Metadata   map[string]string `json:"metadata,omitempty"`

	opts []Option // derived from the fields above
}

// subsetJSON is "subset": missing fields take DefaultSubset's values.
type subsetJSON struct {
	Size     *int `json:"size,omitempty"`
	MinNodes *int `json:"minNodes,omitempty"`
	Client   *int `json:"client,omitempty"`
	Spares   *int `json:"spares,omitempty"`
}

func (j *subsetJSON) subset() Subset {
	s := DefaultSubset()
	for _, f := range []struct {
		in  *int
		out *int
	}{{j.Size, &s.Size}, {j.MinNodes, &s.MinNodes}, {j.Client, &s.Client}, {j.Spares, &s.Spares}} {
		if f.in != nil {
			*f.out = *f.in
		}
	}
	return s
}

type ejectionJSON struct {
	ConsecutiveFailures *int    `json:"consecutiveFailures,omitempty"`
	BaseTime            *string `json:"baseTime,omitempty"`
	MaxTime             *string `json:"maxTime,omitempty"`
	MaxPercent          *int    `json:"maxPercent,omitempty"`
}

// ParseConfig validates the balancer's service-config JSON; gRPC rejects
// the service config with this error.
func (b *builder) ParseConfig(js json.RawMessage) (serviceconfig.LoadBalancingConfig, error) {
	cfg := &lbConfig{}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("%s: bad service config %s: %w", b.name, js, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%s: bad service config %s: data after the JSON object", b.name, js)
	}
	if cfg.Strategy != "" {
		cfg.opts = append(cfg.opts, WithStrategy(cfg.Strategy))
	}
	if cfg.Ejection != nil {
		e, err := parseEjection(cfg.Ejection)
		if err != nil {
			return nil, fmt.Errorf("%s: service config: %w", b.name, err)
		}
		cfg.opts = append(cfg.opts, WithEjection(e))
	}
	if cfg.Subset != nil {
		cfg.opts = append(cfg.opts, WithSubset(cfg.Subset.subset()))
	}
	if cfg.ReuseTried {
		cfg.opts = append(cfg.opts, WithReuseTried())
	}
	for k, v := range cfg.Metadata {
		cfg.opts = append(cfg.opts, WithFilter(metadataEquals(k, v)))
	}
	if _, err := buildOptions(cfg.opts); err != nil {
		return nil, fmt.Errorf("%s: service config: %w", b.name, err)
	}
	return cfg, nil
}

// parseEjection reads "ejection": an object (its missing fields take
// DefaultEjection's values); null is an error, not a silent "off".
func parseEjection(raw json.RawMessage) (Ejection, error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return Ejection{}, fmt.Errorf(`ejection: null is not a setting: leave "ejection" out to disable ejection, or give {} for the defaults`)
	}
	j := &ejectionJSON{}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(j); err != nil {
		return Ejection{}, fmt.Errorf("ejection: %w", err)
	}
	e := DefaultEjection()
	if j.ConsecutiveFailures != nil {
		e.ConsecutiveFailures = *j.ConsecutiveFailures
		if e.ConsecutiveFailures < 1 {
			return e, fmt.Errorf("ejection.consecutiveFailures must be at least 1, got %d", e.ConsecutiveFailures)
		}
	}
	for _, d := range []struct {
		name string
		in   *string
		out  *time.Duration
	}{{"baseTime", j.BaseTime, &e.BaseTime}, {"maxTime", j.MaxTime, &e.MaxTime}} {
		if d.in == nil {
			continue
		}
		v, err := time.ParseDuration(*d.in)
		if err != nil || v <= 0 {
			return e, fmt.Errorf("ejection.%s must be a positive duration such as \"30s\", got %q", d.name, *d.in)
		}
		*d.out = v
	}
	if j.MaxPercent != nil {
		e.MaxPercent = *j.MaxPercent
		if e.MaxPercent < 1 || e.MaxPercent > 100 {
			return e, fmt.Errorf("ejection.maxPercent must be in 1..100, got %d (0 would never eject)", e.MaxPercent)
		}
	}
	return e, e.validate()
}

// Build makes a balancer: gRPC's base balancer (subconnection management,
// health checking) with our picker.
func (b *builder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	gb := &grpcBalancer{b: b}
	gb.sel, _ = New() // the defaults, until the first update brings the config
	gb.Balancer = base.NewBalancerBuilder(b.name, gb, base.Config{HealthCheck: true}).
		Build(&announcer{ClientConn: cc}, opts)
	return gb
}

// grpcBalancer is base's balancer, reconfigured by the service config. gRPC
// serializes calls into a balancer, so its fields need no lock.
type grpcBalancer struct {
	balancer.Balancer
	b       *builder
	sel     *Selector
	cfg     *lbConfig
	selOpts *selectorOptions // the resolver's (NewResolverBuilder's options)
}

func (gb *grpcBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	cfg, _ := s.BalancerConfig.(*lbConfig)
	selOpts, _ := s.ResolverState.Attributes.Value(selectorOptionsKey{}).(*selectorOptions)
	if (cfg != nil && cfg != gb.cfg) || selOpts != gb.selOpts {
		if cfg == nil {
			cfg = gb.cfg
		}
		var opts []Option
		if selOpts != nil {
			opts = append(opts, selOpts.opts...)
		}
		if cfg != nil {
			opts = append(opts, cfg.opts...)
		}
		sel, err := New(opts...)
		if err != nil {
			return err // ParseConfig and NewResolverBuilder validated them
		}
		gb.sel, gb.cfg, gb.selOpts = sel, cfg, selOpts
	}
	known := make(map[string]bool, len(s.ResolverState.Addresses))
	all := make([]Node, 0, len(s.ResolverState.Addresses))
	for _, a := range s.ResolverState.Addresses {
		n := nodeOf(a)
		known[n.ID] = true
		all = append(all, n)
	}
	gb.sel.retain(known)
	if f := gb.sel.setFleet(all); f.order != nil {
		// Subsetting: connect to the subset and its spares only.
		s.ResolverState = subsetState(s.ResolverState, f.order[:min(len(f.order), f.in+gb.sel.opts.subset.Spares)])
	}
	return gb.Balancer.UpdateClientConnState(s)
}

// subsetState is rs with only the addresses (and endpoints) of nodes.
func subsetState(rs resolver.State, nodes []Node) resolver.State {
	keep := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		keep[n.ID] = true
	}
	var addrs []resolver.Address
	for _, a := range rs.Addresses {
		if keep[nodeOf(a).ID] {
			addrs = append(addrs, a)
		}
	}
	var eps []resolver.Endpoint
	for _, ep := range rs.Endpoints {
		for _, a := range ep.Addresses {
			if keep[nodeOf(a).ID] {
				eps = append(eps, ep)
				break
			}
		}
	}
	rs.Addresses, rs.Endpoints = addrs, eps
	return rs
}

// Build implements base.PickerBuilder: the ready subconnections become the
// selector's node set.
func (gb *grpcBalancer) Build(info base.PickerBuildInfo) balancer.Picker {
	if len(info.ReadySCs) == 0 {
		// Nothing is connected yet: calls wait for the next picker, as with
		// gRPC's own balancers. (ErrNoNodes would fail them at once.)
		return base.NewErrPicker(balancer.ErrNoSubConnAvailable)
	}
	nodes := make([]Node, 0, len(info.ReadySCs))
	byID := make(map[string]balancer.SubConn, len(info.ReadySCs))
	for sc, sci := range info.ReadySCs {
		n := nodeOf(sci.Address)
		nodes = append(nodes, n)
		byID[n.ID] = sc
	}
	slices.SortFunc(nodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) })
	v, kept := gb.sel.update(nodes, nil)
	p := &picker{sel: gb.sel, v: v, kept: kept, scs: make([]balancer.SubConn, len(v.nodes))}
	for i, ns := range v.nodes {
		p.scs[i] = byID[ns.node.ID]
	}
	return p
}

// picker picks among the subconnections that were ready when it was built.
type picker struct {
	sel       *Selector
	v         *view
	scs       []balancer.SubConn // aligned with v.nodes
	kept      []Node
	announced bool // OnUpdate ran; touched only by the balancer's goroutine
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	pk, i, err := p.sel.pick(info.Ctx, p.v)
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			err = status.FromContextError(err).Err()
		} else if _, ok := status.FromError(err); !ok {
			// gRPC fails a call at once only on a status error (it would
			// make a wait-for-ready call wait on any other).
			err = status.Error(codes.Unavailable, err.Error())
		}
		return balancer.PickResult{}, err
	}
	classify := p.sel.opts.classifier
	return balancer.PickResult{
		SubConn: p.scs[i],
		Done: func(di balancer.DoneInfo) {
			// gRPC reports a pick it did not use (the subconnection stopped
			// being ready) as a DoneInfo with nothing in it.
			pk.report(classify(di.Err), di.Err != nil || di.BytesSent || di.BytesReceived, di.BytesSent)
		},
	}, nil
}

// announcer runs the OnUpdate hook once a picker is installed, so that the
// hook means what it says: picks from now on see only these nodes.
type announcer struct {
	balancer.ClientConn
}

func (a *announcer) UpdateState(s balancer.State) {
	a.ClientConn.UpdateState(s)
	if p, ok := s.Picker.(*picker); ok && !p.announced {
		p.announced = true
		if h := p.sel.opts.hooks.OnUpdate; h != nil {
			h(p.kept)
		}
	}
}

// nodeKey is the resolver.Address attribute key under which our resolver
// stores the Node.
type nodeKey struct{}

// nodeAttr is comparable through Equal, as gRPC attributes require.
type nodeAttr struct{ n Node }

func (a nodeAttr) Equal(o any) bool {
	b, ok := o.(nodeAttr)
	return ok && a.n.Equal(b.n)
}

func addressOf(n Node) resolver.Address {
	return resolver.Address{Addr: n.Addr, Attributes: attributes.New(nodeKey{}, nodeAttr{n})}
}

// nodeOf returns the Node our resolver stored in a, or, for addresses from
// other resolvers, a Node whose ID is the address.
func nodeOf(a resolver.Address) Node {
	if na, ok := a.Attributes.Value(nodeKey{}).(nodeAttr); ok {
		return na.n
	}
	return Node{ID: a.Addr, Addr: a.Addr}
}
