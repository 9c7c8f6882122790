package metrics

import (
	_ "embed"
	"encoding/json"
	"html/template"
	"net/http"
	"time"

	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/selector"
)

//go:embed page.html
var pageHTML string

// page is the debug page's template: self-contained (no script, no asset
// from elsewhere), refreshed by the browser.
var page = template.Must(template.New("rpcguard").Parse(pageHTML))

// DebugHandler serves a live page of what the Observer watches, in the
// spirit of golang.org/x/net/trace's /debug/requests and the Hystrix
// dashboard: each client's nodes (state, share of attempts, successes and
// failures, in flight, latency, ejections), the circuits (state, error
// rate, volume, events), the retry budgets and the registrations. It
// refreshes every second; ?format=json serves the Snapshot. Mount it where
// you want it (say /debug/rpcguard); it opens no port.
func (o *Observer) DebugHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := o.Snapshot()
		if r.URL.Query().Get("format") == "json" {
			w.Header().Set("Content-Type", "application/json")
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			_ = enc.Encode(s)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := page.Execute(w, view(s)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
}

// pageData is a Snapshot as the page shows it.
type pageData struct {
	When          string
	Refresh       int
	Clients       []pageClient
	Circuits      []CircuitSnapshot
	Policies      []PolicySnapshot
	Shedders      []ShedderSnapshot
	Registrations []pageRegistration
}

type pageClient struct {
	Service string
	Nodes   []pageNode
}

type pageNode struct {
	ID, Addr            string
	Ejected, InSubset   bool
	EjectedFor, Latency string
	Share               int // percent of the client's attempts
	SharePx             int
	Successes, Failures int64
	InFlight, Ejections int64
}

type pageRegistration struct {
	health.RegistrarStats
	Ago string
}

func view(s Snapshot) pageData {
	d := pageData{When: time.Now().Format("15:04:05"), Refresh: 1, Circuits: s.Circuits, Policies: s.Policies, Shedders: s.Shedders}
	for _, c := range s.Clients {
		pc := pageClient{Service: c.Service}
		var total int64
		for _, n := range c.Nodes {
			total += n.Successes + n.Failures
		}
		for _, n := range c.Nodes {
			pc.Nodes = append(pc.Nodes, pageNodeOf(n, total))
		}
		d.Clients = append(d.Clients, pc)
	}
	for _, r := range s.Registrations {
		ago := "never"
		if !r.LastRenewal.IsZero() {
			ago = time.Since(r.LastRenewal).Round(100*time.Millisecond).String() + " ago"
		}
		d.Registrations = append(d.Registrations, pageRegistration{RegistrarStats: r, Ago: ago})
	}
	return d
}

func pageNodeOf(n selector.NodeStats, total int64) pageNode {
	pn := pageNode{ID: n.Node.ID, Addr: n.Node.Addr, Ejected: n.Ejected, InSubset: n.InSubset, Successes: n.Successes, Failures: n.Failures,
		InFlight: n.InFlight, Ejections: n.Ejections, Latency: "-"}
	if n.Ejected {
		pn.EjectedFor = "(" + n.EjectedFor.Round(time.Second).String() + " more)"
	}
	if n.Latency > 0 {
		pn.Latency = n.Latency.Round(10 * time.Microsecond).String()
	}
	if total > 0 {
		pn.Share = int((100*(n.Successes+n.Failures) + total/2) / total)
		pn.SharePx = pn.Share * 2
	}
	return pn
}
