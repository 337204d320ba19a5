package main

// The parts of the peer that depend on the library versions of this build (go-data-transfer
// v1.15.1, go-graphsync v0.13.2, go-libp2p v0.22.0): the blockstore type, the libp2p host with
// its identity, and the stores of --store. The host is assembled from go-libp2p's parts as in
// go-peer-v013 (the top-level libp2p package of v0.22.0 imports a quic-go that does not build
// on current Go).

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	leveldb "github.com/ipfs/go-ds-leveldb"
	blockstore "github.com/ipfs/go-ipfs-blockstore"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	bhost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	msmux "github.com/libp2p/go-libp2p/p2p/muxer/muxer-multistream"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	csms "github.com/libp2p/go-libp2p/p2p/net/conn-security-multistream"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// progName names the binary in messages.
const progName = "go-dt-v115"

// Blockstore is the block store type of this build (go-ipfs-blockstore's).
type Blockstore = blockstore.Blockstore

// NewBlockstore returns an empty in-memory blockstore.
func NewBlockstore() Blockstore {
	return blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
}

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
	h, err := newHost(priv, cfg.Listen)
	if err != nil {
		closer()
		return nil, err
	}
	return &Stack{Host: h, BS: blockstore.NewBlockstore(store), DS: store, closer: closer}, nil
}

// newHost starts a libp2p host with identity priv on TCP, noise and yamux only.
func newHost(priv crypto.PrivKey, listen string) (host.Host, error) {
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	ps, err := pstoremem.NewPeerstore()
	if err != nil {
		return nil, err
	}
	if err := ps.AddPrivKey(id, priv); err != nil {
		return nil, err
	}
	if err := ps.AddPubKey(id, priv.GetPublic()); err != nil {
		return nil, err
	}
	sw, err := swarm.NewSwarm(id, ps, swarm.WithResourceManager(network.NullResourceManager))
	if err != nil {
		return nil, err
	}
	nt, err := noise.New(priv)
	if err != nil {
		return nil, err
	}
	secure := new(csms.SSMuxer)
	secure.AddTransport(noise.ID, nt)
	muxer := msmux.NewBlankTransport()
	muxer.AddTransport("/yamux/1.0.0", yamux.DefaultTransport)
	upgrader, err := tptu.New(secure, muxer)
	if err != nil {
		return nil, err
	}
	tpt, err := tcp.NewTCPTransport(upgrader, network.NullResourceManager)
	if err != nil {
		return nil, err
	}
	if err := sw.AddTransport(tpt); err != nil {
		return nil, err
	}
	a, err := ma.NewMultiaddr(listen)
	if err != nil {
		return nil, fmt.Errorf("listen address %q: %w", listen, err)
	}
	if err := sw.Listen(a); err != nil {
		return nil, err
	}
	h, err := bhost.NewHost(sw, &bhost.HostOpts{})
	if err != nil {
		return nil, err
	}
	h.Start()
	return h, nil
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
