package health

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/rpcguard/rpcguard/internal/feed"
	"github.com/rpcguard/rpcguard/internal/registry"
	"github.com/rpcguard/rpcguard/selector"
)

// Memory is an in-process Registry: the embedded default, for one process
// (tests, demos, a single binary). Entries expire at the first tick after
// their TTL. Close it to stop its expiry goroutine.
type Memory struct {
	tick     time.Duration
	seq      int64 // registrations so far; guarded by mu
	closed   sync.Once
	mu       sync.Mutex
	services map[string]map[string]memEntry
	feeds    map[string]*feed.Feed[selector.Node] // per service, created by Watch
	stop     chan struct{}
	done     chan struct{}
}

type memEntry struct {
	registry.Entry
	expires time.Time
}

// MemoryOption configures NewMemory.
type MemoryOption func(*Memory) error

// WithTick sets how often expired entries are dropped. Default 100 ms.
func WithTick(d time.Duration) MemoryOption {
	return func(m *Memory) error {
		if d <= 0 {
			return fmt.Errorf("health: WithTick(%v): must be positive", d)
		}
		m.tick = d
		return nil
	}
}

// NewMemory starts an in-memory registry.
func NewMemory(opts ...MemoryOption) (*Memory, error) {
	m := &Memory{tick: 100 * time.Millisecond, services: map[string]map[string]memEntry{},
		feeds: map[string]*feed.Feed[selector.Node]{}, stop: make(chan struct{}), done: make(chan struct{})}
	for _, o := range opts {
		if o == nil {
			return nil, fmt.Errorf("health: NewMemory: nil MemoryOption")
		}
		if err := o(m); err != nil {
			return nil, err
		}
	}
	go m.expire()
	return m, nil
}

// Close stops the expiry goroutine and ends every watch; Register and
// Watch fail after it (selector.ErrClosed: nothing would expire), List
// and Deregister still answer. Closing again does nothing.
func (m *Memory) Close() error {
	m.closed.Do(func() { close(m.stop) })
	<-m.done
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, f := range m.feeds {
		f.Close()
	}
	return nil
}

func (m *Memory) expire() {
	defer close(m.done)
	t := time.NewTicker(m.tick)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case now := <-t.C:
			m.mu.Lock()
			for svc, nodes := range m.services {
				changed := false
				for id, e := range nodes {
					if !now.Before(e.expires) {
						delete(nodes, id)
						changed = true
					}
				}
				if changed {
					m.notifyLocked(svc)
				}
			}
			m.mu.Unlock()
		}
	}
}

// Register implements Registry.
func (m *Memory) Register(_ context.Context, service string, node selector.Node, ttl time.Duration) error {
	if err := registry.ValidRegistration(service, node, ttl); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closedLocked() {
		return fmt.Errorf("health: Register(%q): %w", service, selector.ErrClosed)
	}
	nodes := m.services[service]
	if nodes == nil {
		nodes = map[string]memEntry{}
		m.services[service] = nodes
	}
	old, ok := nodes[node.ID]
	if ok && old.Node.Addr != node.Addr {
		return fmt.Errorf("health: service %q: node %q is registered at %q, not %q", service, node.ID, old.Node.Addr, node.Addr)
	}
	seq := old.Seq
	if !ok {
		m.seq++
		seq = m.seq
	}
	nodes[node.ID] = memEntry{Entry: registry.Entry{Node: node, Seq: seq}, expires: time.Now().Add(ttl)}
	if !ok || !old.Node.Equal(node) {
		m.notifyLocked(service)
	}
	return nil
}

// Deregister implements Registry.
func (m *Memory) Deregister(_ context.Context, service, nodeID string) error {
	if err := registry.ValidService(service); err != nil {
		return fmt.Errorf("health: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.services[service][nodeID]; ok {
		delete(m.services[service], nodeID)
		m.notifyLocked(service)
	}
	return nil
}

// List implements Registry.
func (m *Memory) List(_ context.Context, service string) ([]selector.Node, error) {
	if err := registry.ValidService(service); err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshotLocked(service), nil
}

// Watch implements Registry and selector.Source.
func (m *Memory) Watch(ctx context.Context, service string) (selector.Watcher, error) {
	if err := registry.ValidService(service); err != nil {
		return nil, fmt.Errorf("health: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closedLocked() {
		return nil, fmt.Errorf("health: Watch(%q): %w", service, selector.ErrClosed)
	}
	f := m.feeds[service]
	if f == nil {
		f = &feed.Feed[selector.Node]{}
		f.Push(m.snapshotLocked(service))
		m.feeds[service] = f
	}
	return f.Watch(ctx), nil
}

// closedLocked reports whether Close began: Close ends the watches under
// mu, so a watch opened before that is ended too.
func (m *Memory) closedLocked() bool {
	select {
	case <-m.stop:
		return true
	default:
		return false
	}
}

func (m *Memory) snapshotLocked(service string) []selector.Node {
	entries := make(map[string]registry.Entry, len(m.services[service]))
	for id, e := range m.services[service] {
		entries[id] = e.Entry
	}
	return registry.Resolve(entries)
}

func (m *Memory) notifyLocked(service string) {
	if f := m.feeds[service]; f != nil {
		f.Push(m.snapshotLocked(service))
	}
}
