//go:build !etcd

package main

import "errors"

// useEtcd needs the etcd build: see etcd.go.
func (e *env) useEtcd() error {
	return errors.New("faultdemo: built without etcd; run: go run -tags etcd ./examples/faultdemo -etcd")
}
