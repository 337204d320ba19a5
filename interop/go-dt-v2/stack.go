package main

// The parts of the peer that depend on the library versions of this build (go-data-transfer
// v2.0.0, go-graphsync v0.18.1, go-libp2p v0.48.0, boxo): the blockstore type, the libp2p host
// with its identity, and the stores of --store. The go-dt-v115 module has its own stack.go.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/ipfs/boxo/blockstore"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// progName names the binary in messages.
const progName = "go-dt-v2"

// Blockstore is the block store type of this build (boxo's).
type Blockstore = blockstore.Blockstore

// Stack is a node's host and stores.
type Stack struct {
	Host host.Host
	BS   Blockstore
	// DS holds the data-transfer channels (under its own namespace).
	DS     ds.Batching
	closer func()
}

// Close stops the host and closes the stores.
func (s *Stack) Close() {
	_ = s.Host.Close()
	s.closer()
}

// newStack builds the host and stores: in memory with a fresh identity, or with --store in
// DIR (key file DIR/peer.key, one leveldb in DIR/leveldb for blocks and channels).
func newStack(_ context.Context, cfg DtConfig) (*Stack, error) {
	var priv crypto.PrivKey
	var store ds.Batching
	closer := func() {}
	if cfg.Store == "" {
		var err error
		if priv, _, err = crypto.GenerateEd25519Key(rand.Reader); err != nil {
			return nil, err
		}
		store = dssync.MutexWrap(ds.NewMapDatastore())
	} else {
		if err := os.MkdirAll(cfg.Store, 0o755); err != nil {
			return nil, err
		}
		var err error
		if priv, err = loadOrCreateKey(filepath.Join(cfg.Store, "peer.key")); err != nil {
			return nil, err
		}
		ldb, err := leveldb.NewDatastore(filepath.Join(cfg.Store, "leveldb"), nil)
		if err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
		store = ldb
		closer = func() { _ = ldb.Close() }
	}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(),
		libp2p.ListenAddrStrings(cfg.Listen),
	)
	if err != nil {
		closer()
		return nil, err
	}
	return &Stack{Host: h, BS: blockstore.NewBlockstore(store), DS: store, closer: closer}, nil
}

// loadOrCreateKey reads the node key at path, or creates it.
func loadOrCreateKey(path string) (crypto.PrivKey, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		return crypto.UnmarshalPrivateKey(data)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	data, err = crypto.MarshalPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	return priv, os.WriteFile(path, data, 0o600)
}
