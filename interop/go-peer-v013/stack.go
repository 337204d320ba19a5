package main

// The parts of the peer that depend on the go-graphsync and go-libp2p versions of this build
// (go-graphsync v0.13.x on go-libp2p v0.22.0): the blockstore type, the libp2p host and the
// graphsync instance. main.go, node.go, car.go and genfile.go are the go-peer module's files
// (symbolic links).

import (
	"context"
	"crypto/rand"
	"fmt"

	blocks "github.com/ipfs/go-block-format"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/ipfs/go-graphsync"
	gsimpl "github.com/ipfs/go-graphsync/impl"
	gsnet "github.com/ipfs/go-graphsync/network"
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

// Blockstore is the block store type of this build (go-ipfs-blockstore's).
type Blockstore = blockstore.Blockstore

// NewBlockstore returns an empty in-memory blockstore.
func NewBlockstore() Blockstore {
	return blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
}

// NewHost starts a libp2p host with a fresh ed25519 identity, TCP, noise and yamux only. With
// no listen addresses it only dials. It is assembled from go-libp2p's parts: the top-level
// libp2p package of v0.22.0 imports quic-go v0.28, which refuses to build on Go >= 1.20.
func NewHost(listen ...string) (host.Host, error) {
	priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
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
	for _, addr := range listen {
		a, err := ma.NewMultiaddr(addr)
		if err != nil {
			return nil, fmt.Errorf("listen address %q: %w", addr, err)
		}
		if err := sw.Listen(a); err != nil {
			return nil, err
		}
	}
	h, err := bhost.NewHost(sw, &bhost.HostOpts{})
	if err != nil {
		return nil, err
	}
	h.Start()
	return h, nil
}

// NewGraphsync runs go-graphsync on h over bs. Incoming requests are validated by the caller's
// hook only (no default selector-depth validator), so explore-all selectors can be accepted.
func NewGraphsync(ctx context.Context, h host.Host, bs Blockstore, onStore func(blocks.Block)) graphsync.GraphExchange {
	return gsimpl.New(ctx, gsnet.NewFromLibp2pHost(h), LinkSystem(bs, onStore), gsimpl.RejectAllRequestsByDefault())
}
