//go:build !micro5

package main

import rows "github.com/rpcguard/rpcguard/examples/faultdemo/microrows"

// microVersion is the go-micro of the go-micro rows.
const microVersion = "v4"

func quietMicro() { rows.Quiet() }

func playMicro(sc microScenario, client string, r microRun) (microOutcome, error) {
	o, err := rows.Play(rows.Scenario(sc), client, rows.Run(r))
	return microOutcome(o), err
}
