package main

// The data-transfer driver of ../dt-protocol.md that does not depend on the go-data-transfer
// version: flags, stdin commands, JSON events, the InteropVoucher types as JSON, loading,
// export, disconnect and the blockstore read delay. Each module has its own dtnode.go (the
// manager, validator, payments and events on its go-data-transfer) and stack.go (host,
// blockstore, datastore). This file is shared by symbolic link.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/linking"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// The type identifiers a node registers, and the outcomes of an InteropVoucherResult.
const (
	VoucherType       = "InteropVoucher"
	VoucherResultType = "InteropVoucherResult"

	OutcomeAccepted        = "accepted"
	OutcomeRefused         = "refused"
	OutcomePaymentRequired = "payment-required"
	OutcomePaid            = "paid"
	OutcomeSettled         = "settled"
)

// Voucher is InteropVoucher: DAG-CBOR {"ID": text, "Amount": uint}.
type Voucher struct {
	ID     string `json:"ID"`
	Amount uint64 `json:"Amount"`
}

// VoucherResult is InteropVoucherResult: DAG-CBOR {"Owed": uint, "Outcome": text}.
type VoucherResult struct {
	Owed    uint64 `json:"Owed"`
	Outcome string `json:"Outcome"`
}

// DtConfig holds the flags of `dt`.
type DtConfig struct {
	Listen   string
	Store    string
	Cars     []string
	Files    []string
	Refuse   bool
	PayEvery uint64
	// SkipRequestCopies: see freshRequest in go-dt-v2/dtnode.go (go-dt-v115 always skips).
	SkipRequestCopies bool
	Finalize          bool
	AcceptPush        bool
	// ReadDelayAfter and ReadDelay: after ReadDelayAfter blocks read for sending, every read
	// sleeps ReadDelay (off when ReadDelay is 0).
	ReadDelayAfter int64
	ReadDelay      time.Duration
	Monitor        bool
}

// parseDtConfig parses the flags of `dt`.
func parseDtConfig(args []string) (DtConfig, error) {
	var cfg DtConfig
	var cars, files multiFlag
	var readDelay string
	fs := flag.NewFlagSet("dt", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", "/ip4/127.0.0.1/tcp/0", "listen multiaddr")
	fs.StringVar(&cfg.Store, "store", "", "directory of the persistent key, blockstore and channel store")
	fs.Var(&cars, "car", "CARv1 file to load (repeatable)")
	fs.Var(&files, "file", "file to import as UnixFS (repeatable)")
	fs.BoolVar(&cfg.Refuse, "refuse", false, "refuse every push and pull")
	fs.Uint64Var(&cfg.PayEvery, "pay-every", 0, "as the sender of a pull, ask for payment after every BYTES")
	fs.BoolVar(&cfg.Finalize, "finalize", false, "ask for a final payment before completing")
	fs.BoolVar(&cfg.SkipRequestCopies, "skip-request-copies", false,
		"as the initiator, do not pay a payment request equal to the one before (the copy a go-data-transfer v1.15 responder sends; the v1.15 peer never pays it)")
	fs.BoolVar(&cfg.AcceptPush, "accept-push", true, "accept pushes")
	fs.StringVar(&readDelay, "read-delay-after", "", "N:MS: after N blocks read, every read sleeps MS milliseconds")
	fs.BoolVar(&cfg.Monitor, "monitor", false, "run the channel monitor with short test values")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return cfg, err
	}
	if len(rest) != 0 {
		return cfg, fmt.Errorf("dt takes no positional arguments, got %q", rest)
	}
	cfg.Cars, cfg.Files = cars, files
	if readDelay != "" {
		n, ms, ok := strings.Cut(readDelay, ":")
		after, err1 := strconv.ParseInt(n, 10, 64)
		delay, err2 := strconv.ParseInt(ms, 10, 64)
		if !ok || err1 != nil || err2 != nil || after < 0 || delay < 0 {
			return cfg, fmt.Errorf("--read-delay-after %q is not N:MS", readDelay)
		}
		cfg.ReadDelayAfter, cfg.ReadDelay = after, time.Duration(delay)*time.Millisecond
	}
	return cfg, nil
}

// ChannelRef is a channel id as JSON.
type ChannelRef struct {
	Initiator string `json:"initiator"`
	Responder string `json:"responder"`
	ID        uint64 `json:"id"`
}

// DtCommand is one JSON line read from stdin.
type DtCommand struct {
	Cmd         string          `json:"cmd"`
	Tag         any             `json:"tag"`
	Peer        string          `json:"peer"`
	Root        string          `json:"root"`
	Selector    json.RawMessage `json:"selector"`
	Voucher     *Voucher        `json:"voucher"`
	VoucherType string          `json:"voucher_type"`
	Channel     *ChannelRef     `json:"channel"`
	Out         string          `json:"out"`
}

// dtBackend is what dtnode.go provides on its go-data-transfer version.
type dtBackend interface {
	// Open opens a pull (or a push) to p and returns the channel.
	Open(ctx context.Context, pull bool, p peer.ID, root cid.Cid, sel datamodel.Node, v Voucher, voucherType string) (ChannelRef, error)
	Pause(ctx context.Context, ch ChannelRef) error
	Resume(ctx context.Context, ch ChannelRef) error
	Cancel(ctx context.Context, ch ChannelRef) error
	Restart(ctx context.Context, ch ChannelRef) error
	SendVoucher(ctx context.Context, ch ChannelRef, v Voucher) error
	// State returns the fields of the `state` event.
	State(ctx context.Context, ch ChannelRef) (Fields, error)
	Stop(ctx context.Context) error
}

// events emits `dt` and, once per channel, `finished`.
type events struct {
	out      *Emitter
	mu       sync.Mutex
	finished map[ChannelRef]bool
}

func newEvents(out *Emitter) *events {
	return &events{out: out, finished: map[ChannelRef]bool{}}
}

// dt emits one data-transfer event; vr is the decoded voucher result, or nil.
func (e *events) dt(ch ChannelRef, name, status string, sent, received uint64, message string, vr any) {
	f := Fields{"channel": ch, "name": name, "status": status, "sent": sent, "received": received, "message": message}
	if vr != nil {
		f["voucher_result"] = vr
	}
	e.out.Emit("dt", f)
	if status != "Completed" && status != "Failed" && status != "Cancelled" {
		return
	}
	e.mu.Lock()
	done := e.finished[ch]
	e.finished[ch] = true
	e.mu.Unlock()
	if !done {
		e.out.Emit("finished", Fields{"channel": ch, "status": status, "sent": sent, "received": received, "message": message})
	}
}

// delayReads makes lsys sleep cfg.ReadDelay on every block read after the first
// cfg.ReadDelayAfter.
func delayReads(lsys linking.LinkSystem, cfg DtConfig) linking.LinkSystem {
	if cfg.ReadDelay <= 0 {
		return lsys
	}
	var reads atomic.Int64
	read := lsys.StorageReadOpener
	lsys.StorageReadOpener = func(lctx linking.LinkContext, lnk datamodel.Link) (io.Reader, error) {
		if reads.Add(1) > cfg.ReadDelayAfter {
			select {
			case <-time.After(cfg.ReadDelay):
			case <-lctx.Ctx.Done():
				return nil, lctx.Ctx.Err()
			}
		}
		return read(lctx, lnk)
	}
	return lsys
}

// parseSelector decodes a dag-json selector; none (or null) is explore-all.
func parseSelector(raw json.RawMessage) (datamodel.Node, error) {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return ExploreAll, nil
	}
	nb := basicnode.Prototype.Any.NewBuilder()
	if err := dagjson.Decode(nb, bytes.NewReader(raw)); err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	return nb.Build(), nil
}

// countingStore counts the distinct blocks and bytes read through it.
type countingStore struct {
	Blockstore
	seen  map[cid.Cid]struct{}
	bytes uint64
}

func (c *countingStore) Get(ctx context.Context, k cid.Cid) (blocks.Block, error) {
	blk, err := c.Blockstore.Get(ctx, k)
	if err == nil {
		if _, dup := c.seen[k]; !dup {
			c.seen[k] = struct{}{}
			c.bytes += uint64(len(blk.RawData()))
		}
	}
	return blk, err
}

// dtMain runs `dt`: a data-transfer node driven by stdin until `quit`, end of stdin or ctx.
func dtMain(ctx context.Context, args []string, stdin io.Reader, out *Emitter) error {
	cfg, err := parseDtConfig(args)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := newStack(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	for _, path := range cfg.Cars {
		roots, n, err := ReadCarFile(ctx, path, st.BS)
		if err != nil {
			return fmt.Errorf("load %s: %w", path, err)
		}
		for _, r := range roots {
			out.Emit("loaded", Fields{"root": r.String(), "blocks": n, "car": path})
		}
	}
	for _, path := range cfg.Files {
		root, n, err := ImportPath(path, st.BS, KuboOptions(1, nil))
		if err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
		out.Emit("loaded", Fields{"root": root.String(), "blocks": n, "file": path})
	}
	if cfg.Store != "" {
		if err := loadPeers(st, cfg.Store); err != nil {
			return err
		}
	}
	node, err := newDtNode(ctx, cfg, st, newEvents(out), out)
	if err != nil {
		return err
	}
	addrs := []string{}
	for _, a := range st.Host.Addrs() {
		addrs = append(addrs, a.String())
	}
	out.Emit("listening", Fields{"peer_id": st.Host.ID().String(), "addrs": addrs})
	d := &driver{cfg: cfg, st: st, node: node, out: out}
	quit := make(chan struct{})
	go func() {
		defer close(quit)
		dec := json.NewDecoder(stdin)
		for ctx.Err() == nil {
			var c DtCommand
			if err := dec.Decode(&c); err != nil {
				if !errors.Is(err, io.EOF) {
					out.Emit("command_failed", Fields{"cmd": "", "tag": nil, "error": "bad command: " + err.Error()})
				}
				return
			}
			if c.Cmd == "quit" {
				return
			}
			d.handle(ctx, c)
		}
	}()
	select {
	case <-quit:
	case <-ctx.Done():
	}
	stopCtx, stopCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer stopCancel()
	_ = node.Stop(stopCtx)
	out.Emit("stopped", Fields{})
	return nil
}

// driver answers the stdin commands.
type driver struct {
	cfg  DtConfig
	st   *Stack
	node dtBackend
	out  *Emitter
}

func (d *driver) handle(ctx context.Context, c DtCommand) {
	fail := func(err error) {
		d.out.Emit("command_failed", Fields{"cmd": c.Cmd, "tag": c.Tag, "error": err.Error()})
	}
	done := func() { d.out.Emit("command_done", Fields{"cmd": c.Cmd, "tag": c.Tag}) }
	opCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	switch c.Cmd {
	case "pull", "push":
		ch, err := d.open(opCtx, c)
		if err != nil {
			fail(err)
			return
		}
		d.out.Emit("opened", Fields{"channel": ch, "tag": c.Tag})
	case "pause", "resume", "cancel", "restart", "send_voucher", "state":
		if c.Channel == nil {
			fail(errors.New("no channel"))
			return
		}
		var err error
		switch c.Cmd {
		case "pause":
			err = d.node.Pause(opCtx, *c.Channel)
		case "resume":
			err = d.node.Resume(opCtx, *c.Channel)
		case "cancel":
			err = d.node.Cancel(opCtx, *c.Channel)
		case "restart":
			err = d.node.Restart(opCtx, *c.Channel)
		case "send_voucher":
			if c.Voucher == nil {
				err = errors.New("no voucher")
			} else {
				err = d.node.SendVoucher(opCtx, *c.Channel, *c.Voucher)
			}
		case "state":
			var f Fields
			f, err = d.node.State(opCtx, *c.Channel)
			if err == nil {
				f["channel"] = *c.Channel
				f["tag"] = c.Tag
				d.out.Emit("state", f)
				return
			}
		}
		if err != nil {
			fail(err)
			return
		}
		done()
	case "disconnect":
		p, err := peer.Decode(c.Peer)
		if err != nil {
			fail(fmt.Errorf("peer %q: %w", c.Peer, err))
			return
		}
		if err := d.st.Host.Network().ClosePeer(p); err != nil {
			fail(err)
			return
		}
		done()
	case "export":
		root, err := cid.Decode(c.Root)
		if err != nil {
			fail(fmt.Errorf("root %q: %w", c.Root, err))
			return
		}
		sel, err := parseSelector(c.Selector)
		if err != nil {
			fail(err)
			return
		}
		cs := &countingStore{Blockstore: d.st.BS, seen: map[cid.Cid]struct{}{}}
		n, err := WriteCarFile(opCtx, c.Out, cs, root, sel)
		if err != nil {
			fail(err)
			return
		}
		d.out.Emit("exported", Fields{"blocks": n, "bytes": cs.bytes, "out": c.Out, "tag": c.Tag})
	default:
		fail(fmt.Errorf("unknown command %q", c.Cmd))
	}
}

// peersFile lists, in a --store directory, the addresses of the peers this node opened
// channels with (one /p2p multiaddr a line), so that the node started again can dial them to
// restart a channel.
const peersFile = "peers.txt"

// rememberPeer adds addr to the store's peers file (with --store).
func (d *driver) rememberPeer(addr string) error {
	if d.cfg.Store == "" {
		return nil
	}
	path := filepath.Join(d.cfg.Store, peersFile)
	known, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	for _, line := range strings.Split(string(known), "\n") {
		if line == addr {
			return nil
		}
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteString(addr + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// loadPeers puts the addresses of the store's peers file into the peerstore.
func loadPeers(st *Stack, dir string) error {
	known, err := os.ReadFile(filepath.Join(dir, peersFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(known), "\n") {
		if line == "" {
			continue
		}
		addr, err := ma.NewMultiaddr(line)
		if err != nil {
			return fmt.Errorf("%s: %q: %w", peersFile, line, err)
		}
		info, err := peer.AddrInfoFromP2pAddr(addr)
		if err != nil {
			return fmt.Errorf("%s: %q: %w", peersFile, line, err)
		}
		st.Host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.PermanentAddrTTL)
	}
	return nil
}

// open connects to the command's peer and opens its pull or push.
func (d *driver) open(ctx context.Context, c DtCommand) (ChannelRef, error) {
	addr, err := ma.NewMultiaddr(c.Peer)
	if err != nil {
		return ChannelRef{}, fmt.Errorf("peer %q: %w", c.Peer, err)
	}
	info, err := peer.AddrInfoFromP2pAddr(addr)
	if err != nil {
		return ChannelRef{}, fmt.Errorf("peer %q: %w", c.Peer, err)
	}
	// Permanent addresses: the channel monitor and restarts dial the peer again later, also
	// after a restart of this process on the same --store.
	d.st.Host.Peerstore().AddAddrs(info.ID, info.Addrs, peerstore.PermanentAddrTTL)
	if err := d.rememberPeer(c.Peer); err != nil {
		return ChannelRef{}, err
	}
	if err := d.st.Host.Connect(ctx, *info); err != nil {
		return ChannelRef{}, fmt.Errorf("connect %s: %w", info.ID, err)
	}
	root, err := cid.Decode(c.Root)
	if err != nil {
		return ChannelRef{}, fmt.Errorf("root %q: %w", c.Root, err)
	}
	sel, err := parseSelector(c.Selector)
	if err != nil {
		return ChannelRef{}, err
	}
	v := Voucher{}
	if c.Voucher != nil {
		v = *c.Voucher
	}
	vt := c.VoucherType
	if vt == "" {
		vt = VoucherType
	}
	return d.node.Open(ctx, c.Cmd == "pull", info.ID, root, sel, v, vt)
}

// responderFinalizing says whether an initiator's channel, by the name of its status (the
// names go-data-transfer v1.15 and v2 share), has seen its responder begin finalizing (or
// complete).
func responderFinalizing(status string) bool {
	switch status {
	case "ResponderFinalizing", "ResponderFinalizingTransferFinished", "ResponderCompleted",
		"Completing", "Completed":
		return true
	}
	return false
}
