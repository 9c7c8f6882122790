package selector_test

import (
	"net/url"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"

	"github.com/rpcguard/rpcguard/internal/testcluster"
	"github.com/rpcguard/rpcguard/selector"
)

// recordingCC stands in for gRPC's channel (a fake, named as one): it
// records the states the resolver pushes.
type recordingCC struct {
	mu     sync.Mutex
	states []resolver.State
}

func (c *recordingCC) UpdateState(s resolver.State) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.states = append(c.states, s)
	return nil
}
func (c *recordingCC) ReportError(error)                                    {}
func (c *recordingCC) NewAddress([]resolver.Address)                        {}
func (c *recordingCC) ParseServiceConfig(string) *serviceconfig.ParseResult { return nil }

func (c *recordingCC) last() (resolver.State, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.states) == 0 {
		return resolver.State{}, 0
	}
	return c.states[len(c.states)-1], len(c.states)
}

func TestResolverSetsAddressesAndEndpoints(t *testing.T) {
	src, err := selector.NewStatic(nodes(2)...)
	if err != nil {
		t.Fatal(err)
	}
	cc := &recordingCC{}
	rb, err := selector.NewResolverBuilder(src)
	if err != nil {
		t.Fatal(err)
	}
	r, err := rb.Build(resolver.Target{URL: *mustURL(t, "rpcguard:///echo")}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	check := func(want int, updates int) {
		testcluster.WaitFor(t, 5*time.Second, "the resolver's update", func() bool { _, n := cc.last(); return n == updates })
		st, _ := cc.last()
		if len(st.Addresses) != want || len(st.Endpoints) != want {
			t.Fatalf("update %d: %d addresses, %d endpoints; want %d of each", updates, len(st.Addresses), len(st.Endpoints), want)
		}
		for i := range st.Addresses {
			if st.Endpoints[i].Addresses[0].Addr != st.Addresses[i].Addr {
				t.Fatalf("endpoint %d is %v, address %v", i, st.Endpoints[i], st.Addresses[i])
			}
		}
	}
	check(2, 1)
	if err := src.Update(nodes(3)...); err != nil {
		t.Fatal(err)
	}
	check(3, 2)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
