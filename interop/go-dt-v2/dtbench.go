package main

// The Go side of the data-transfer rows of `cargo xtask bench`: a go-data-transfer v2 node (the
// interop driver's own: newStack and newDtNode, InteropVoucher accepted) whose blocks live in a
// FileBlockstore (filestore.go, one file per block, as the Rust bench peers' store), printing
// nothing per event, so that only the transfer is measured.
//
//	go-dt-v2 bench-serve --blocks DIR                   serve the blocks of DIR until stdin ends
//	go-dt-v2 bench-pull --blocks DIR --peer MULTIADDR/p2p/ID --root CID [--timeout D]
//
// bench-serve prints `listening` (peer_id, addrs), then `finished` (channel, status, sent,
// received, message) once per channel that reaches Completed, Failed or Cancelled, and
// `stopped`. bench-pull connects (`connected`), opens a pull of the whole DAG (explore-all)
// with the voucher InteropVoucher{ID: "bench", Amount: 0}, waits for its channel to finish and
// prints `done` (status, sent, received, message); it fails unless the channel Completed.

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	datatransfer "github.com/filecoin-project/go-data-transfer/v2"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

func init() {
	extraCommands["bench-serve"] = benchServeMain
	extraCommands["bench-pull"] = benchPullMain
}

// benchFinished is a channel that reached a terminal status.
type benchFinished struct {
	chid   datatransfer.ChannelID
	status datatransfer.Status
	fields Fields
}

// benchNode starts a silent node whose blocks are the FileBlockstore in dir; every channel
// that finishes is sent on the returned channel (which never blocks the manager: it is
// buffered and a full buffer drops the report).
func benchNode(ctx context.Context, dir string) (*Stack, *dtNode, <-chan benchFinished, error) {
	bs, err := OpenFileBlockstore(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg := DtConfig{Listen: "/ip4/127.0.0.1/tcp/0", AcceptPush: true}
	st, err := newStack(ctx, cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	st.BS = bs
	quiet := NewEmitter(nil)
	backend, err := newDtNode(ctx, cfg, st, newEvents(quiet), quiet)
	if err != nil {
		st.Close()
		return nil, nil, nil, err
	}
	node, ok := backend.(*dtNode)
	if !ok {
		st.Close()
		return nil, nil, nil, fmt.Errorf("unexpected node type %T", backend)
	}
	finished := make(chan benchFinished, 64)
	node.mgr.SubscribeToEvents(func(_ datatransfer.Event, chst datatransfer.ChannelState) {
		status := chst.Status()
		if status != datatransfer.Completed && status != datatransfer.Failed && status != datatransfer.Cancelled {
			return
		}
		report := benchFinished{chid: chst.ChannelID(), status: status, fields: Fields{
			"channel":  ref(chst.ChannelID()),
			"status":   datatransfer.Statuses[status],
			"sent":     chst.Sent(),
			"received": chst.Received(),
			"message":  chst.Message(),
		}}
		select {
		case finished <- report:
		default:
		}
	})
	return st, node, finished, nil
}

// benchServeMain runs `go-dt-v2 bench-serve`.
func benchServeMain(ctx context.Context, args []string, stdin io.Reader, out *Emitter) error {
	fs := flag.NewFlagSet("bench-serve", flag.ContinueOnError)
	dir := fs.String("blocks", "", "block store directory (one file per block)")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return fmt.Errorf("bench-serve needs --blocks")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, node, finished, err := benchNode(ctx, *dir)
	if err != nil {
		return err
	}
	defer st.Close()
	addrs := []string{}
	for _, a := range st.Host.Addrs() {
		addrs = append(addrs, a.String())
	}
	out.Emit("listening", Fields{"peer_id": st.Host.ID().String(), "addrs": addrs})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(io.Discard, stdin)
	}()
	reported := map[datatransfer.ChannelID]bool{}
loop:
	for {
		select {
		case f := <-finished:
			if !reported[f.chid] {
				reported[f.chid] = true
				out.Emit("finished", f.fields)
			}
		case <-done:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	_ = node.Stop(stopCtx)
	out.Emit("stopped", Fields{})
	return nil
}

// benchPullMain runs `go-dt-v2 bench-pull`.
func benchPullMain(ctx context.Context, args []string, _ io.Reader, out *Emitter) error {
	fs := flag.NewFlagSet("bench-pull", flag.ContinueOnError)
	dir := fs.String("blocks", "", "block store directory (one file per block)")
	peerAddr := fs.String("peer", "", "responder multiaddr ending in /p2p/ID")
	rootFlag := fs.String("root", "", "root CID")
	timeout := fs.Duration("timeout", 15*time.Minute, "give up when the channel has not finished by then")
	if _, err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" || *peerAddr == "" || *rootFlag == "" {
		return fmt.Errorf("bench-pull needs --blocks, --peer and --root")
	}
	root, err := cid.Decode(*rootFlag)
	if err != nil {
		return fmt.Errorf("root: %w", err)
	}
	info, err := peer.AddrInfoFromString(*peerAddr)
	if err != nil {
		return fmt.Errorf("peer address: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, node, finished, err := benchNode(ctx, *dir)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Host.Connect(ctx, *info); err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	out.Emit("connected", Fields{"peer": info.ID.String()})
	ch, err := node.Open(ctx, true, info.ID, root, ExploreAll, Voucher{ID: "bench"}, VoucherType)
	if err != nil {
		return fmt.Errorf("open the pull: %w", err)
	}
	chid, err := channelID(ch)
	if err != nil {
		return err
	}
	deadline := time.After(*timeout)
	for {
		select {
		case f := <-finished:
			if f.chid != chid {
				continue
			}
			out.Emit("done", f.fields)
			stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer stopCancel()
			_ = node.Stop(stopCtx)
			if f.status != datatransfer.Completed {
				return fmt.Errorf("the pull ended %s: %v", datatransfer.Statuses[f.status], f.fields["message"])
			}
			return nil
		case <-deadline:
			return fmt.Errorf("the pull did not finish within %s", *timeout)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
