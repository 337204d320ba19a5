package main

// The Go side of `cargo xtask bench`: graphsync pulls between block stores on disk, with nothing
// printed per block, so that only the transfer is measured.
//
//	go-peer bench-load --store DIR --car FILE     store every block of a CAR (each one checked)
//	go-peer bench-serve --store DIR               serve the store until stdin ends
//	go-peer bench-request --store DIR --peer MULTIADDR/p2p/ID --root CID [--status-wait D]
//
// The store (FileBlockstore) keeps one file per block, named by the CID's string form under a
// directory named by the string's next-to-last two characters (go-ds-flatfs's next-to-last/2
// layout), written to a temporary name and renamed, never synced: the same layout and write
// path as the Rust bench peer's store (crates/graphsync/examples/bench_peer.rs). go-ds-flatfs
// itself is not used: v0.5.1, the newest release the module proxy offers, does not build against
// the go-datastore v0.9.2 that go-graphsync v0.18.1 needs (query.ResultBuilder is gone).

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-graphsync"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// FileBlockstore is a block store with one file per block (see the file's comment).
type FileBlockstore struct {
	dir  string
	temp atomic.Uint64
}

// OpenFileBlockstore opens (creating it if needed) a file-per-block store in dir.
func OpenFileBlockstore(dir string) (*FileBlockstore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &FileBlockstore{dir: dir}, nil
}

func (s *FileBlockstore) path(c cid.Cid) string {
	key := c.String()
	shard := "__"
	if len(key) >= 3 {
		shard = key[len(key)-3 : len(key)-1]
	}
	return filepath.Join(s.dir, shard, key)
}

// DeleteBlock removes a block; a missing block is not an error.
func (s *FileBlockstore) DeleteBlock(_ context.Context, c cid.Cid) error {
	err := os.Remove(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Has tells whether the block is stored.
func (s *FileBlockstore) Has(_ context.Context, c cid.Cid) (bool, error) {
	_, err := os.Stat(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Get reads a block.
func (s *FileBlockstore) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := os.ReadFile(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("block %s not found", c)
	}
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// GetSize returns a block's size.
func (s *FileBlockstore) GetSize(_ context.Context, c cid.Cid) (int, error) {
	info, err := os.Stat(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return -1, fmt.Errorf("block %s not found", c)
	}
	if err != nil {
		return -1, err
	}
	return int(info.Size()), nil
}

// Put writes a block unless it is already stored.
func (s *FileBlockstore) Put(_ context.Context, b blocks.Block) error {
	path := s.path(b.Cid())
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	shard := filepath.Dir(path)
	if err := os.MkdirAll(shard, 0o755); err != nil {
		return err
	}
	temp := filepath.Join(shard, fmt.Sprintf(".tmp-%d-%d", os.Getpid(), s.temp.Add(1)))
	if err := os.WriteFile(temp, b.RawData(), 0o644); err != nil {
		return err
	}
	return os.Rename(temp, path)
}

// PutMany writes blocks one by one.
func (s *FileBlockstore) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		if err := s.Put(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// AllKeysChan lists every stored block.
func (s *FileBlockstore) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	out := make(chan cid.Cid)
	go func() {
		defer close(out)
		_ = filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			c, err := cid.Decode(d.Name())
			if err != nil {
				return nil
			}
			select {
			case out <- c:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return out, nil
}

// HashOnRead is accepted and ignored (the go-ipfs-blockstore interface of the v0.13 build asks
// for it); blocks are checked when they are loaded from a CAR or arrive over graphsync.
func (s *FileBlockstore) HashOnRead(bool) {}

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
