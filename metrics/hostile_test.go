package metrics_test

import (
	"context"
	"strings"
	"testing"

	"github.com/rpcguard/rpcguard/metrics"
	"github.com/rpcguard/rpcguard/selector"
)

// Names from outside the program (a registry's node IDs, a service name a
// program passes on) never crash a scrape: a node ID that is not valid
// UTF-8 is refused by the one node validation, and a label value that is
// not valid UTF-8 is repaired in the scrape instead of panicking in
// Prometheus's Gather.
func TestHostileNamesNeverCrashAScrape(t *testing.T) {
	bad := selector.Node{ID: "node-\xff\xfe", Addr: "127.0.0.1:7001"}
	if err := bad.Validate(); err == nil {
		t.Fatalf("a node ID that is not UTF-8 was accepted")
	}
	for _, id := range []string{"a b", "a/b", strings.Repeat("x", 257), "a\x00b"} {
		if err := (selector.Node{ID: id, Addr: "127.0.0.1:7001"}).Validate(); err == nil {
			t.Errorf("node ID %q accepted", id)
		}
	}
	obs := metrics.New()
	sel, err := selector.New(obs.Selector("svc-\xff"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sel.Update([]selector.Node{{ID: "nodé-<b>1", Addr: "127.0.0.1:7002"}}); err != nil {
		t.Fatal(err)
	}
	pk, err := sel.Pick(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pk.Done(nil, true)
	mfs, err := obs.Registry().Gather()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	found := false
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				found = found || l.GetValue() == "svc-\uFFFD"
			}
		}
	}
	if !found {
		t.Fatal("the repaired service label is not in the scrape")
	}
}
