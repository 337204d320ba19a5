package main

// The parts of the peer that depend on the go-graphsync and go-libp2p versions of this build:
// the blockstore type, the libp2p host and the graphsync instance. The go-peer-v013 module has
// its own version of this file and shares the rest.

import (
	"context"

	"github.com/ipfs/boxo/blockstore"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-graphsync"
	gsimpl "github.com/ipfs/go-graphsync/impl"
	gsnet "github.com/ipfs/go-graphsync/network"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// Blockstore is the block store type of this build (boxo's).
type Blockstore = blockstore.Blockstore

// NewHost starts a libp2p host with a fresh ed25519 identity, TCP, noise and yamux only. With
// no listen addresses it only dials.
func NewHost(listen ...string) (host.Host, error) {
	opts := []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(),
	}
	if len(listen) == 0 {
		opts = append(opts, libp2p.NoListenAddrs)
	} else {
		opts = append(opts, libp2p.ListenAddrStrings(listen...))
	}
	return libp2p.New(opts...)
}

// NewGraphsync runs go-graphsync on h over bs. Incoming requests are validated by the caller's
// hook only (no default selector-depth validator), so explore-all selectors can be accepted.
func NewGraphsync(ctx context.Context, h host.Host, bs blockstore.Blockstore, onStore func(blocks.Block)) graphsync.GraphExchange {
	return gsimpl.New(ctx, gsnet.NewFromLibp2pHost(h), LinkSystem(bs, onStore), gsimpl.RejectAllRequestsByDefault())
}
