package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-graphsync"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ServeConfig configures a responder.
type ServeConfig struct {
	// Listen is the multiaddr to listen on.
	Listen string
	// Cars are CARv1 files to load.
	Cars []string
	// Files are files to import with Import.
	Files []string
	// Import is how Files are imported.
	Import ImportOptions
	// Reject rejects every request instead of accepting it.
	Reject bool
	// PauseAfterBlocks, if positive, pauses each response once it has sent that many blocks
	// (until an "unpause" command, or an update with UnpauseOnUpdate).
	PauseAfterBlocks int
	// UnpauseOnUpdate makes the request-updated hook unpause a paused response.
	UnpauseOnUpdate bool
	// CancelAfterBlocks, if positive, cancels each response (status 35) once it has sent that
	// many blocks.
	CancelAfterBlocks int
}

// Serve runs a responder until ctx ends, stdin ends, or a "quit" command arrives.
func Serve(ctx context.Context, cfg ServeConfig, stdin io.Reader, out *Emitter) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bs := NewBlockstore()
	for _, path := range cfg.Cars {
		roots, n, err := ReadCarFile(ctx, path, bs)
		if err != nil {
			return fmt.Errorf("load %s: %w", path, err)
		}
		for _, r := range roots {
			out.Emit("loaded", Fields{"root": r.String(), "blocks": n, "car": path})
		}
	}
	for _, path := range cfg.Files {
		root, n, err := ImportPath(path, bs, cfg.Import)
		if err != nil {
			return fmt.Errorf("import %s: %w", path, err)
		}
		out.Emit("loaded", Fields{"root": root.String(), "blocks": n, "file": path})
	}
	h, err := NewHost(cfg.Listen)
	if err != nil {
		return err
	}
	defer h.Close()
	gs := NewGraphsync(ctx, h, bs, nil)

	var mu sync.Mutex
	sent := map[graphsync.RequestID]int{}
	gs.RegisterIncomingRequestHook(func(p peer.ID, req graphsync.RequestData, actions graphsync.IncomingRequestHookActions) {
		f := requestFields(req)
		f["peer"] = p.String()
		f["accepted"] = !cfg.Reject
		out.Emit("request_received", f)
		if !cfg.Reject {
			actions.ValidateRequest()
		}
	})
	if cfg.PauseAfterBlocks > 0 || cfg.CancelAfterBlocks > 0 {
		var hookMu sync.Mutex
		seen := map[graphsync.RequestID]int{}
		gs.RegisterOutgoingBlockHook(func(p peer.ID, req graphsync.RequestData, blk graphsync.BlockData, actions graphsync.OutgoingBlockHookActions) {
			hookMu.Lock()
			seen[req.ID()]++
			n := seen[req.ID()]
			hookMu.Unlock()
			if n == cfg.PauseAfterBlocks {
				actions.PauseResponse()
				out.Emit("paused", Fields{"request": req.ID().String(), "blocks": n})
			}
			if n == cfg.CancelAfterBlocks {
				// Cancel waits for the response manager, which runs this hook: not inline.
				id := req.ID()
				go func() {
					err := gs.Cancel(ctx, id)
					f := Fields{"request": id.String(), "blocks": n}
					if err != nil {
						f["error"] = err.Error()
					}
					out.Emit("cancelled_response", f)
				}()
			}
		})
	}
	gs.RegisterRequestUpdatedHook(func(p peer.ID, req, update graphsync.RequestData, actions graphsync.RequestUpdatedHookActions) {
		out.Emit("request_updated", Fields{"request": req.ID().String(), "extensions": extensionsOf(update)})
		if cfg.UnpauseOnUpdate {
			actions.UnpauseResponse()
		}
	})
	gs.RegisterBlockSentListener(func(p peer.ID, req graphsync.RequestData, blk graphsync.BlockData) {
		mu.Lock()
		sent[req.ID()]++
		n := sent[req.ID()]
		mu.Unlock()
		out.Emit("block_sent", Fields{"request": req.ID().String(), "cid": blk.Link().String(), "size": blk.BlockSize(), "blocks": n})
	})
	gs.RegisterCompletedResponseListener(func(p peer.ID, req graphsync.RequestData, status graphsync.ResponseStatusCode) {
		mu.Lock()
		n := sent[req.ID()]
		mu.Unlock()
		out.Emit("completed", Fields{"request": req.ID().String(), "status": int(status), "status_name": status.String(), "blocks": n})
	})
	gs.RegisterRequestorCancelledListener(func(p peer.ID, req graphsync.RequestData) {
		out.Emit("cancelled_by_requester", Fields{"request": req.ID().String()})
	})
	gs.RegisterNetworkErrorListener(func(p peer.ID, req graphsync.RequestData, err error) {
		out.Emit("network_error", Fields{"request": req.ID().String(), "error": err.Error()})
	})
	gs.RegisterReceiverNetworkErrorListener(func(p peer.ID, err error) {
		out.Emit("receiver_error", Fields{"peer": p.String(), "error": err.Error()})
	})

	addrs := make([]string, 0, len(h.Addrs()))
	for _, a := range h.Addrs() {
		addrs = append(addrs, a.String())
	}
	out.Emit("listening", Fields{"peer_id": h.ID().String(), "addrs": addrs})

	done := make(chan struct{})
	go func() {
		defer close(done)
		readCommands(ctx, stdin, out, func(c Command) bool {
			if c.Cmd == "quit" {
				return false
			}
			runCommand(ctx, gs, c, "", out)
			return true
		})
	}()
	select {
	case <-ctx.Done():
	case <-done:
	}
	out.Emit("stopped", Fields{})
	return nil
}

// RequestConfig configures a requester.
type RequestConfig struct {
	// Peer is the responder's multiaddr ending in /p2p/ID.
	Peer string
	// Root is the CID to request.
	Root cid.Cid
	// Selector is the selector (ExploreAll if nil).
	Selector datamodel.Node
	// Extensions go with the request.
	Extensions []graphsync.ExtensionData
	// Out, if set, receives the blocks that arrived as a CARv1 file.
	Out string
	// Have is a CARv1 file whose first HaveFirst blocks (all if HaveFirst < 0) are in the
	// local store before the request starts.
	Have string
	// HaveFirst limits the blocks taken from Have.
	HaveFirst int
	// Parallel is the number of identical requests sent at once (at least 1).
	Parallel int
	// CancelAfterBlocks, if positive, cancels each request once that many blocks arrived.
	CancelAfterBlocks int
	// PauseAfterBlocks, if positive, pauses each request once that many blocks arrived and
	// unpauses it UnpauseAfter later.
	PauseAfterBlocks int
	// UnpauseAfter is the pause length for PauseAfterBlocks.
	UnpauseAfter time.Duration
	// UpdateOnPause, if not empty, is sent as a request update whenever a response says
	// RequestPaused (15).
	UpdateOnPause []graphsync.ExtensionData
	// StatusWait bounds how long a request whose traversal completed before a terminal status
	// arrived (go-graphsync's requester completes on its local traversal and ignores a late
	// status) keeps listening for that status through the incoming-response hook.
	StatusWait time.Duration
	// DedupKeyPerRequest gives request i the extension graphsync/dedup-by-key = "interop-i",
	// so a Go responder keeps a separate de-duplication pool for each.
	DedupKeyPerRequest bool
}

// RequestResult summarises a finished request (with Parallel > 1: the worst of them).
type RequestResult struct {
	// Blocks is the number of distinct blocks stored.
	Blocks int
	// Status is the last response status received (0 if none).
	Status graphsync.ResponseStatusCode
	// Errors are the messages from graphsync's error channel.
	Errors []string
	// Cancelled tells whether this peer cancelled the request itself.
	Cancelled bool
	// LateStatus tells whether the terminal status arrived only after graphsync had ended the
	// request (see RequestConfig.StatusWait).
	LateStatus bool
}

// Request dials cfg.Peer, runs cfg.Parallel identical graphsync requests (at least one) and
// writes what arrived to cfg.Out. stdin carries pause, unpause, update and cancel commands
// while the requests run (the request id may be left out: the first request is meant).
func Request(ctx context.Context, cfg RequestConfig, stdin io.Reader, out *Emitter) (RequestResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	info, err := peer.AddrInfoFromString(cfg.Peer)
	if err != nil {
		return RequestResult{}, fmt.Errorf("peer address: %w", err)
	}
	h, err := NewHost()
	if err != nil {
		return RequestResult{}, err
	}
	defer h.Close()
	if err := h.Connect(ctx, *info); err != nil {
		return RequestResult{}, fmt.Errorf("connect: %w", err)
	}
	out.Emit("connected", Fields{"peer": info.ID.String()})

	var car bytes.Buffer
	cw, err := NewCarWriter(&car, cfg.Root)
	if err != nil {
		return RequestResult{}, err
	}
	var carErr error
	var carMu sync.Mutex
	bs := NewBlockstore()
	if cfg.Have != "" {
		limit := cfg.HaveFirst
		if limit == 0 {
			limit = -1
		}
		_, n, err := ReadCarFileFirst(ctx, cfg.Have, bs, limit)
		if err != nil {
			return RequestResult{}, fmt.Errorf("have %s: %w", cfg.Have, err)
		}
		out.Emit("have", Fields{"blocks": n, "car": cfg.Have})
	}
	gs := NewGraphsync(ctx, h, bs, func(blk blocks.Block) {
		carMu.Lock()
		defer carMu.Unlock()
		if err := cw.Put(blk); err != nil && carErr == nil {
			carErr = err
		}
	})

	parallel := cfg.Parallel
	if parallel < 1 {
		parallel = 1
	}
	type state struct {
		index      int
		lastStatus atomic.Int64
		received   atomic.Int64
		cancelled  atomic.Bool
		// terminal is closed when a terminal status arrives.
		terminal     chan struct{}
		terminalOnce sync.Once
	}
	states := map[graphsync.RequestID]*state{}
	ids := make([]graphsync.RequestID, parallel)
	for i := range ids {
		ids[i] = graphsync.NewRequestID()
		states[ids[i]] = &state{index: i, terminal: make(chan struct{})}
	}
	gs.RegisterIncomingResponseHook(func(p peer.ID, resp graphsync.ResponseData, actions graphsync.IncomingResponseHookActions) {
		st, ok := states[resp.RequestID()]
		if !ok {
			return
		}
		id := resp.RequestID()
		st.lastStatus.Store(int64(resp.Status()))
		if resp.Status().IsTerminal() {
			st.terminalOnce.Do(func() { close(st.terminal) })
		}
		md := resp.Metadata()
		out.Emit("response", Fields{
			"request":     id.String(),
			"index":       st.index,
			"status":      int(resp.Status()),
			"status_name": resp.Status().String(),
			"metadata":    md.Length(),
			"extensions":  extensionsOf(resp),
		})
		md.Iterate(func(c cid.Cid, action graphsync.LinkAction) {
			out.Emit("metadata", Fields{"request": id.String(), "index": st.index, "cid": c.String(), "action": string(action)})
		})
		if resp.Status() == graphsync.RequestPaused && len(cfg.UpdateOnPause) > 0 {
			actions.UpdateRequestWithExtensions(cfg.UpdateOnPause...)
			out.Emit("update_sent", Fields{"request": id.String(), "index": st.index})
		}
	})
	gs.RegisterIncomingBlockHook(func(p peer.ID, resp graphsync.ResponseData, blk graphsync.BlockData, actions graphsync.IncomingBlockHookActions) {
		st, ok := states[resp.RequestID()]
		if !ok {
			return
		}
		id := resp.RequestID()
		n := st.received.Add(1)
		out.Emit("block", Fields{"request": id.String(), "index": st.index, "cid": blk.Link().String(), "size": blk.BlockSize(), "on_wire": blk.BlockSizeOnWire(), "blocks": n})
		if int(n) == cfg.PauseAfterBlocks {
			actions.PauseRequest()
			out.Emit("paused", Fields{"request": id.String(), "index": st.index, "blocks": n})
			go func() {
				select {
				case <-ctx.Done():
					return
				case <-time.After(cfg.UnpauseAfter):
				}
				runCommand(ctx, gs, Command{Cmd: "unpause", Request: id.String()}, "", out)
			}()
		}
		if int(n) == cfg.CancelAfterBlocks {
			st.cancelled.Store(true)
			// Cancel waits for the request manager, which runs this hook: not inline.
			go runCommand(ctx, gs, Command{Cmd: "cancel", Request: id.String()}, "", out)
		}
	})

	sel := cfg.Selector
	if sel == nil {
		sel = ExploreAll
	}
	type channels struct {
		progress <-chan graphsync.ResponseProgress
		errs     <-chan error
	}
	chans := make([]channels, parallel)
	for i, id := range ids {
		reqCtx := context.WithValue(ctx, graphsync.RequestIDContextKey{}, id)
		exts := append([]graphsync.ExtensionData(nil), cfg.Extensions...)
		if cfg.DedupKeyPerRequest {
			exts = append(exts, graphsync.ExtensionData{Name: graphsync.ExtensionDeDupByKey, Data: basicnode.NewString(fmt.Sprintf("interop-%d", i))})
		}
		progress, errs := gs.Request(reqCtx, info.ID, cidlink.Link{Cid: cfg.Root}, sel, exts...)
		chans[i] = channels{progress, errs}
		out.Emit("request_sent", Fields{"request": id.String(), "index": i, "root": cfg.Root.String()})
	}

	go readCommands(ctx, stdin, out, func(c Command) bool {
		runCommand(ctx, gs, c, ids[0].String(), out)
		return true
	})

	results := make([]RequestResult, parallel)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			id, st := ids[i], states[ids[i]]
			res := RequestResult{Errors: []string{}}
			progress, errs := chans[i].progress, chans[i].errs
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
					res.Errors = append(res.Errors, err.Error())
					out.Emit("error", Fields{"request": id.String(), "index": i, "error": err.Error()})
				}
			}
			res.Cancelled = st.cancelled.Load()
			res.Status = graphsync.ResponseStatusCode(st.lastStatus.Load())
			if !res.Status.IsTerminal() && !res.Cancelled && cfg.StatusWait > 0 {
				// graphsync ended the request on its local traversal; the responder's
				// verdict may still be on its way (the hook sees late responses too).
				select {
				case <-st.terminal:
					res.LateStatus = true
				case <-time.After(cfg.StatusWait):
				case <-ctx.Done():
				}
				res.Status = graphsync.ResponseStatusCode(st.lastStatus.Load())
			}
			res.Blocks = int(st.received.Load())
			results[i] = res
		}(i)
	}
	wg.Wait()
	carMu.Lock()
	stored := cw.Count()
	err = carErr
	carMu.Unlock()
	if err == nil && cfg.Out != "" {
		err = os.WriteFile(cfg.Out, car.Bytes(), 0o644)
	}
	if err != nil {
		return RequestResult{}, err
	}
	worst := RequestResult{Status: graphsync.RequestCompletedFull, Errors: []string{}}
	for i, res := range results {
		out.Emit("done", Fields{
			"request":     ids[i].String(),
			"index":       i,
			"status":      int(res.Status),
			"status_name": res.Status.String(),
			"blocks":      res.Blocks,
			"stored":      stored,
			"errors":      res.Errors,
			"cancelled":   res.Cancelled,
			"late_status": res.LateStatus,
			"car":         cfg.Out,
		})
		worst.Errors = append(worst.Errors, res.Errors...)
		worst.Cancelled = worst.Cancelled || res.Cancelled
		if res.Status != graphsync.RequestCompletedFull {
			worst.Status = res.Status
		}
	}
	worst.Blocks = stored
	return worst, nil
}

// runCommand runs pause, unpause, update or cancel on the request named in c (or on
// defaultID) and reports the outcome.
func runCommand(ctx context.Context, gs graphsync.GraphExchange, c Command, defaultID string, out *Emitter) {
	fail := func(err error) {
		out.Emit("command_failed", Fields{"cmd": c.Cmd, "request": c.Request, "error": err.Error()})
	}
	name := c.Request
	if name == "" {
		name = defaultID
	}
	u, err := uuid.Parse(name)
	if err != nil {
		fail(fmt.Errorf("request id %q: %w", name, err))
		return
	}
	id, err := graphsync.ParseRequestID(u[:])
	if err != nil {
		fail(err)
		return
	}
	exts, err := parseExtensionMap(c.Extensions)
	if err != nil {
		fail(err)
		return
	}
	switch c.Cmd {
	case "pause":
		err = gs.Pause(ctx, id)
	case "unpause":
		err = gs.Unpause(ctx, id, exts...)
	case "update":
		err = gs.SendUpdate(ctx, id, exts...)
	case "cancel":
		err = gs.Cancel(ctx, id)
	default:
		err = fmt.Errorf("unknown command %q", c.Cmd)
	}
	if err != nil {
		fail(err)
		return
	}
	out.Emit("command_done", Fields{"cmd": c.Cmd, "request": id.String()})
}

// requestFields describes an incoming request.
func requestFields(req graphsync.RequestData) Fields {
	f := Fields{
		"request":    req.ID().String(),
		"root":       req.Root().String(),
		"type":       string(req.Type()),
		"priority":   int(req.Priority()),
		"extensions": extensionsOf(req),
	}
	if sel, err := encodeDagJSON(req.Selector()); err == nil {
		f["selector"] = sel
	}
	return f
}

// extensionsOf lists the extensions of a request or response as dag-json values.
func extensionsOf(v any) map[string]json.RawMessage {
	named, ok := v.(interface {
		ExtensionNames() []graphsync.ExtensionName
		Extension(graphsync.ExtensionName) (datamodel.Node, bool)
	})
	exts := map[string]json.RawMessage{}
	if !ok {
		return exts
	}
	for _, name := range named.ExtensionNames() {
		if node, ok := named.Extension(name); ok {
			if enc, err := encodeDagJSON(node); err == nil {
				exts[string(name)] = enc
			}
		}
	}
	return exts
}

func encodeDagJSON(n datamodel.Node) (json.RawMessage, error) {
	if n == nil {
		return json.RawMessage("null"), nil
	}
	var buf bytes.Buffer
	if err := dagjson.Encode(n, &buf); err != nil {
		return nil, err
	}
	return json.RawMessage(buf.Bytes()), nil
}

func decodeDagJSON(data []byte) (datamodel.Node, error) {
	nb := basicnode.Prototype.Any.NewBuilder()
	if err := dagjson.Decode(nb, bytes.NewReader(data)); err != nil {
		return nil, err
	}
	return nb.Build(), nil
}

func parseExtensionMap(m map[string]json.RawMessage) ([]graphsync.ExtensionData, error) {
	var exts []graphsync.ExtensionData
	for name, raw := range m {
		node, err := decodeDagJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("extension %s: %w", name, err)
		}
		exts = append(exts, graphsync.ExtensionData{Name: graphsync.ExtensionName(name), Data: node})
	}
	return exts, nil
}

// serveMain runs `go-peer serve`.
func serveMain(ctx context.Context, args []string, stdin *os.File, out *Emitter) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "multiaddr to listen on")
	var cars, files multiFlag
	fs.Var(&cars, "car", "CARv1 file to load (repeatable)")
	fs.Var(&files, "file", "file to import (repeatable)")
	cidVersion := fs.Int("cid-version", 1, "CID version for --file imports (1 implies raw leaves)")
	reject := fs.Bool("reject", false, "reject every request")
	pauseAfter := fs.Int("pause-after-blocks", 0, "pause each response after sending this many blocks")
	unpauseOnUpdate := fs.Bool("unpause-on-update", false, "unpause a paused response when the requester sends an update")
	cancelAfter := fs.Int("cancel-after-blocks", 0, "cancel each response (status 35) after sending this many blocks")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("serve takes no positional arguments, got %q", rest)
	}
	return Serve(ctx, ServeConfig{
		Listen:            *listen,
		Cars:              cars,
		Files:             files,
		Import:            KuboOptions(*cidVersion, nil),
		Reject:            *reject,
		PauseAfterBlocks:  *pauseAfter,
		UnpauseOnUpdate:   *unpauseOnUpdate,
		CancelAfterBlocks: *cancelAfter,
	}, stdin, out)
}

// requestMain runs `go-peer request`.
func requestMain(ctx context.Context, args []string, stdin *os.File, out *Emitter) error {
	fs := flag.NewFlagSet("request", flag.ContinueOnError)
	peerAddr := fs.String("peer", "", "responder multiaddr ending in /p2p/ID")
	root := fs.String("root", "", "root CID")
	selJSON := fs.String("selector", "", "selector as dag-json (default: explore all)")
	outPath := fs.String("out", "", "write the blocks that arrived to this CARv1 file")
	var extFlags, updateFlags multiFlag
	fs.Var(&extFlags, "ext", "request extension name=dag-json (repeatable)")
	fs.Var(&updateFlags, "update-on-pause", "extension name=dag-json sent as an update when the responder pauses (repeatable)")
	have := fs.String("have", "", "CARv1 file whose blocks are in the local store before the request")
	haveFirst := fs.Int("have-first", 0, "take only the first N blocks of --have (0: all)")
	parallel := fs.Int("parallel", 1, "number of identical requests sent at once")
	cancelAfter := fs.Int("cancel-after-blocks", 0, "cancel each request after this many blocks arrived")
	pauseAfter := fs.Int("pause-after-blocks", 0, "pause each request after this many blocks arrived")
	unpauseAfter := fs.Duration("unpause-after", 200*time.Millisecond, "how long --pause-after-blocks pauses")
	dedupPerRequest := fs.Bool("dedup-key-per-request", false, "give each parallel request its own graphsync/dedup-by-key")
	statusWait := fs.Duration("status-wait", 10*time.Second, "after graphsync ends a request without a terminal status, wait this long for it (0: do not wait)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("request takes no positional arguments, got %q", rest)
	}
	if *peerAddr == "" || *root == "" {
		return fmt.Errorf("request needs --peer and --root")
	}
	cfg := RequestConfig{
		Peer:               *peerAddr,
		Out:                *outPath,
		Have:               *have,
		HaveFirst:          *haveFirst,
		Parallel:           *parallel,
		CancelAfterBlocks:  *cancelAfter,
		PauseAfterBlocks:   *pauseAfter,
		UnpauseAfter:       *unpauseAfter,
		DedupKeyPerRequest: *dedupPerRequest,
		StatusWait:         *statusWait,
	}
	if cfg.Root, err = cid.Decode(*root); err != nil {
		return fmt.Errorf("root: %w", err)
	}
	if *selJSON != "" {
		if cfg.Selector, err = decodeDagJSON([]byte(*selJSON)); err != nil {
			return fmt.Errorf("selector: %w", err)
		}
	}
	if cfg.Extensions, err = parseExtensionFlags(extFlags); err != nil {
		return err
	}
	if cfg.UpdateOnPause, err = parseExtensionFlags(updateFlags); err != nil {
		return err
	}
	res, err := Request(ctx, cfg, stdin, out)
	if err != nil {
		return err
	}
	if len(res.Errors) > 0 || res.Status != graphsync.RequestCompletedFull {
		return fmt.Errorf("request ended with status %d (%s)", int(res.Status), res.Status)
	}
	return nil
}

// parseExtensionFlags parses name=dag-json flag values.
func parseExtensionFlags(flags []string) ([]graphsync.ExtensionData, error) {
	var exts []graphsync.ExtensionData
	for _, e := range flags {
		name, value, ok := strings.Cut(e, "=")
		if !ok {
			return nil, fmt.Errorf("extension %q is not name=dag-json", e)
		}
		node, err := decodeDagJSON([]byte(value))
		if err != nil {
			return nil, fmt.Errorf("extension %s: %w", name, err)
		}
		exts = append(exts, graphsync.ExtensionData{Name: graphsync.ExtensionName(name), Data: node})
	}
	return exts, nil
}
