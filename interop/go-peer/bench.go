package main

// The Go side of `cargo xtask bench`: graphsync pulls between block stores on disk, with nothing
// printed per block, so that only the transfer is measured.
//
//	go-peer bench-load --store DIR --car FILE     store every block of a CAR (each one checked)
//	go-peer bench-serve --store DIR               serve the store until stdin ends
//	go-peer bench-request --store DIR --peer MULTIADDR/p2p/ID --root CID [--status-wait D]
//
// The store is FileBlockstore (filestore.go), one file per block, as on the Rust side.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-graphsync"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// benchLoadMain runs `go-peer bench-load`.
func benchLoadMain(ctx context.Context, args []string, out *Emitter) error {
	fs := flag.NewFlagSet("bench-load", flag.ContinueOnError)
	dir := fs.String("store", "", "block store directory")
	car := fs.String("car", "", "CARv1 file to load")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *car == "" {
		return fmt.Errorf("bench-load needs --store and --car")
	}
	bs, err := OpenFileBlockstore(*dir)
	if err != nil {
		return err
	}
	roots, n, err := ReadCarFile(ctx, *car, bs)
	if err != nil {
		return fmt.Errorf("load %s: %w", *car, err)
	}
	names := make([]string, 0, len(roots))
	for _, r := range roots {
		names = append(names, r.String())
	}
	out.Emit("", Fields{"roots": names, "blocks": n})
	return nil
}

// benchServeMain runs `go-peer bench-serve`: every request is accepted.
func benchServeMain(ctx context.Context, args []string, stdin io.Reader, out *Emitter) error {
	fs := flag.NewFlagSet("bench-serve", flag.ContinueOnError)
	dir := fs.String("store", "", "block store directory")
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "multiaddr to listen on")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("bench-serve needs --store")
	}
	bs, err := OpenFileBlockstore(*dir)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h, err := NewHost(*listen)
	if err != nil {
		return err
	}
	defer h.Close()
	gs := NewGraphsync(ctx, h, bs, nil)
	gs.RegisterIncomingRequestHook(func(p peer.ID, req graphsync.RequestData, actions graphsync.IncomingRequestHookActions) {
		actions.ValidateRequest()
	})
	addrs := make([]string, 0, len(h.Addrs()))
	for _, a := range h.Addrs() {
		addrs = append(addrs, a.String())
	}
	out.Emit("listening", Fields{"peer_id": h.ID().String(), "addrs": addrs})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, stdin)
	}()
	select {
	case <-ctx.Done():
	case <-done:
	}
	out.Emit("stopped", Fields{})
	return nil
}

// benchRequestMain runs `go-peer bench-request`: one explore-all request into the store.
func benchRequestMain(ctx context.Context, args []string, out *Emitter) error {
	fs := flag.NewFlagSet("bench-request", flag.ContinueOnError)
	dir := fs.String("store", "", "block store directory")
	peerAddr := fs.String("peer", "", "responder multiaddr ending in /p2p/ID")
	rootFlag := fs.String("root", "", "root CID")
	statusWait := fs.Duration("status-wait", 10*time.Second, "after graphsync ends the request without a terminal status, wait this long for it")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *peerAddr == "" || *rootFlag == "" {
		return fmt.Errorf("bench-request needs --store, --peer and --root")
	}
	root, err := cid.Decode(*rootFlag)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	bs, err := OpenFileBlockstore(*dir)
	if err != nil {
		return err
	}
	info, err := peer.AddrInfoFromString(*peerAddr)
	if err != nil {
		return fmt.Errorf("peer address: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	h, err := NewHost()
	if err != nil {
		return err
	}
	defer h.Close()
	if err := h.Connect(ctx, *info); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	out.Emit("connected", Fields{"peer": info.ID.String()})

	gs := NewGraphsync(ctx, h, bs, nil)
	id := graphsync.NewRequestID()
	var lastStatus atomic.Int64
	var received, bytes atomic.Int64
	terminal := make(chan struct{})
	var terminalOnce atomic.Bool
	gs.RegisterIncomingResponseHook(func(p peer.ID, resp graphsync.ResponseData, actions graphsync.IncomingResponseHookActions) {
		if resp.RequestID() != id {
			return
		}
		lastStatus.Store(int64(resp.Status()))
		if resp.Status().IsTerminal() && terminalOnce.CompareAndSwap(false, true) {
			close(terminal)
		}
	})
	gs.RegisterIncomingBlockHook(func(p peer.ID, resp graphsync.ResponseData, blk graphsync.BlockData, actions graphsync.IncomingBlockHookActions) {
		if resp.RequestID() != id {
			return
		}
		received.Add(1)
		bytes.Add(int64(blk.BlockSize()))
	})
	reqCtx := context.WithValue(ctx, graphsync.RequestIDContextKey{}, id)
	progress, errs := gs.Request(reqCtx, info.ID, cidlink.Link{Cid: root}, ExploreAll)
	failures := []string{}
	for progress != nil || errs != nil {
		select {
		case _, ok := <-progress:
			if !ok {
				progress = nil
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			failures = append(failures, err.Error())
		}
	}
	status := graphsync.ResponseStatusCode(lastStatus.Load())
	if !status.IsTerminal() && *statusWait > 0 {
		// go-graphsync ends a request on its local traversal; the responder's verdict may
		// still be on its way (the hook sees late responses too).
		select {
		case <-terminal:
		case <-time.After(*statusWait):
		case <-ctx.Done():
		}
		status = graphsync.ResponseStatusCode(lastStatus.Load())
	}
	out.Emit("done", Fields{
		"status":      int(status),
		"status_name": status.String(),
		"blocks":      received.Load(),
		"bytes":       bytes.Load(),
		"errors":      failures,
	})
	if len(failures) > 0 || status != graphsync.RequestCompletedFull {
		return fmt.Errorf("request ended with status %d (%s)", int(status), status)
	}
	return nil
}
