// Package etcdtest runs a real, embedded etcd on 127.0.0.1 random ports
// (go.etcd.io/etcd/server/v3/embed), for tests and demos of the etcd
// registry: yours as well as rpcguard's. It can stop and start the member
// again on the same data directory and ports, or from empty data (a
// rebuilt cluster). It compiles the etcd server: import it from tests.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is one embedded etcd member.
type Server struct {
	dir          string
	client, peer url.URL
	e            *embed.Etcd
}

// Start starts etcd with its data in dir, on two free ports. A port found
// free may be taken by another process before etcd binds it: Start then
// tries other ports, a few times.
func Start(dir string) (s *Server, err error) {
	for range 5 {
		if s, err = start(dir); err == nil || !strings.Contains(err.Error(), "address already in use") {
			return s, err
		}
		// Start afresh: nothing of the failed member may stay in dir.
		if rerr := os.RemoveAll(dir); rerr != nil {
			return nil, rerr
		}
		if merr := os.MkdirAll(dir, 0o700); merr != nil {
			return nil, merr
		}
	}
	return nil, err
}

func start(dir string) (*Server, error) {
	cp, err := freePort()
	if err != nil {
		return nil, err
	}
	pp, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{dir: dir,
		client: url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", cp)},
		peer:   url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", pp)}}
	return s, s.Restart()
}

// Endpoint is the client URL, for clientv3.Config.Endpoints.
func (s *Server) Endpoint() string { return s.client.String() }

// Restart starts etcd again (after Stop) on the same directory and ports.
func (s *Server) Restart() error {
	cfg := embed.NewConfig()
	cfg.Name = "rpcguard-test"
	cfg.Dir = s.dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{s.client}, []url.URL{s.client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{s.peer}, []url.URL{s.peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcdtest: start: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("etcdtest: not ready after 30 s")
	}
	s.e = e
	return nil
}

// Stop stops etcd; its data stays for Restart.
func (s *Server) Stop() {
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// RestartEmpty starts etcd again (after Stop) on the same ports with its
// data removed: a cluster rebuilt from empty data, whose revisions start
// over.
func (s *Server) RestartEmpty() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("etcdtest: %w", err)
	}
	return s.Restart()
}
