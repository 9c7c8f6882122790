package health

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/rpcguard/rpcguard/selector"
)

// Keeper keeps many nodes registered, a Registrar each, for an adapter
// whose registrations come and go by name (go-micro's Register and
// Deregister): Hold starts a node's Registrar (once: holding it again with
// the same address and metadata does nothing), Release stops it. Calls for
// different nodes never wait for each other's registry calls. It is safe
// for concurrent use.
type Keeper struct {
	reg  Registry
	opts []RegistrarOption

	mu     sync.Mutex
	held   map[string]*kept // "SERVICE/NODE ID"
	closed bool
}

type kept struct {
	mu   sync.Mutex // orders Start, Halt and Stop of this node
	node selector.Node
	r    *Registrar
}

// NewKeeper returns a Keeper whose Registrars take opts (checked now; what
// depends on a node's TTL is checked at Hold).
func NewKeeper(reg Registry, opts ...RegistrarOption) (*Keeper, error) {
	if reg == nil {
		return nil, fmt.Errorf("health: NewKeeper: nil registry")
	}
	if _, err := buildRegistrarOptions(opts); err != nil {
		return nil, fmt.Errorf("health: NewKeeper: %w", err)
	}
	return &Keeper{reg: reg, opts: slices.Clone(opts), held: map[string]*kept{}}, nil
}

// Hold keeps node of service registered by a Registrar built with opts and
// then the Keeper's options (which win: a WithTTL given to NewKeeper
// overrides a node's). A node held with another address or metadata gets a
// new Registrar (the old one halts). It returns the first registration's
// error; the Registrar keeps trying in the background.
func (k *Keeper) Hold(ctx context.Context, service string, node selector.Node, opts ...RegistrarOption) error {
	key := service + "/" + node.ID
	k.mu.Lock()
	if k.closed {
		k.mu.Unlock()
		return fmt.Errorf("health: Keeper.Hold(%q, %q): %w", service, node.ID, selector.ErrClosed)
	}
	old := k.held[key]
	if old != nil && old.node.Equal(node) {
		k.mu.Unlock()
		return nil
	}
	r, err := NewRegistrar(k.reg, service, node, append(slices.Clone(opts), k.opts...)...)
	if err != nil {
		k.mu.Unlock()
		return err
	}
	h := &kept{node: node, r: r}
	h.mu.Lock() // before anyone can find it: Release waits for Start
	defer h.mu.Unlock()
	k.held[key] = h
	k.mu.Unlock()
	if old != nil {
		old.mu.Lock()
		old.r.Halt()
		old.mu.Unlock()
	}
	return r.Start(ctx)
}

// Release stops the Registrar of service's node id (deregistered, then its
// drain: clients stop sending before the server stops accepting); a node
// it does not hold is deregistered from the registry directly.
func (k *Keeper) Release(ctx context.Context, service, id string) error {
	key := service + "/" + id
	k.mu.Lock()
	h, ok := k.held[key]
	delete(k.held, key)
	k.mu.Unlock()
	if !ok {
		return k.reg.Deregister(ctx, service, id)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.r.Stop(ctx)
}

// Close stops every Registrar (their nodes deregistered) and refuses Hold
// from then on; closing twice is harmless.
func (k *Keeper) Close(ctx context.Context) error {
	k.mu.Lock()
	held := k.held
	k.held, k.closed = map[string]*kept{}, true
	k.mu.Unlock()
	var errs []error
	for _, h := range held {
		h.mu.Lock()
		errs = append(errs, h.r.Stop(ctx))
		h.mu.Unlock()
	}
	return errors.Join(errs...)
}
