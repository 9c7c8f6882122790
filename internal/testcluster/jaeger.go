package testcluster

import (
	"encoding/json"
	"net/http"
	"net/url"
)

// JaegerTraces asks a Jaeger query API (e.g. http://127.0.0.1:16686) for
// service's recent traces and returns, per trace, how many spans each
// operation has; nil when the query fails (the caller polls with WaitFor).
func JaegerTraces(query, service string) []map[string]int {
	resp, err := http.Get(query + "/api/traces?limit=10&service=" + url.QueryEscape(service))
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Data []struct {
			Spans []struct {
				OperationName string `json:"operationName"`
			} `json:"spans"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	traces := make([]map[string]int, len(body.Data))
	for i, tr := range body.Data {
		traces[i] = map[string]int{}
		for _, s := range tr.Spans {
			traces[i][s.OperationName]++
		}
	}
	return traces
}
