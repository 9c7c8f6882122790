//go:build etcd

package main

import (
	"fmt"
	"os"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/rpcguard/rpcguard/health"
	"github.com/rpcguard/rpcguard/health/etcd"
	"github.com/rpcguard/rpcguard/health/etcd/etcdtest"
)

// useEtcd registers the nodes in an embedded etcd instead of the in-memory
// registry. It is compiled with -tags etcd only: the etcd server is a large
// build that the demo's default run does not need.
func (e *env) useEtcd() error {
	dir, err := os.MkdirTemp("", "rpcguard-faultdemo-etcd-")
	if err != nil {
		return err
	}
	srv, err := etcdtest.Start(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return err
	}
	e.closers = append(e.closers, func() { srv.Stop(); _ = os.RemoveAll(dir) })
	e.registryName = "embedded etcd"
	runs := 0
	e.newRegistry = func() (health.Registry, func(), error) {
		cli, err := clientv3.New(etcd.ClientConfig(srv.Endpoint()))
		if err != nil {
			return nil, nil, err
		}
		runs++ // a prefix per run: runs do not see each other's nodes
		reg, err := etcd.New(cli, etcd.WithPrefix(fmt.Sprintf("/faultdemo/%d/", runs)))
		if err != nil {
			_ = cli.Close()
			return nil, nil, err
		}
		return reg, func() { _ = cli.Close() }, nil
	}
	return nil
}
