package main

// The data-transfer node on go-data-transfer v1.15: manager, validator and revalidator (paid
// retrieval with ErrPause / ErrResume and finalization in OnComplete), auto-payment by the
// initiator, and the events as JSON.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	datatransfer "github.com/filecoin-project/go-data-transfer"
	"github.com/filecoin-project/go-data-transfer/channelmonitor"
	"github.com/filecoin-project/go-data-transfer/encoding"
	dtimpl "github.com/filecoin-project/go-data-transfer/impl"
	dtnet "github.com/filecoin-project/go-data-transfer/network"
	gstransport "github.com/filecoin-project/go-data-transfer/transport/graphsync"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	gsimpl "github.com/ipfs/go-graphsync/impl"
	gsnet "github.com/ipfs/go-graphsync/network"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/libp2p/go-libp2p/core/peer"
)

// interopVoucher is InteropVoucher (or, with typ set, the same bytes under another type
// identifier, for the unregistered-voucher scenario).
type interopVoucher struct {
	Voucher
	typ datatransfer.TypeIdentifier
}

// Type is the voucher's type identifier.
func (v *interopVoucher) Type() datatransfer.TypeIdentifier {
	if v.typ != "" {
		return v.typ
	}
	return VoucherType
}

// MarshalCBOR writes {"ID": text, "Amount": uint} in canonical order.
func (v *interopVoucher) MarshalCBOR(w io.Writer) error {
	n, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "ID", qp.String(v.ID))
		qp.MapEntry(ma, "Amount", qp.Int(int64(v.Amount)))
	})
	if err != nil {
		return err
	}
	return dagcbor.Encode(n, w)
}

// UnmarshalCBOR reads InteropVoucher.
func (v *interopVoucher) UnmarshalCBOR(r io.Reader) error {
	n, err := decodeMap(r)
	if err != nil {
		return err
	}
	idNode, err := n.LookupByString("ID")
	if err != nil {
		return fmt.Errorf("voucher: %w", err)
	}
	id, err := idNode.AsString()
	if err != nil {
		return fmt.Errorf("voucher ID: %w", err)
	}
	amount, err := uintField(n, "Amount")
	if err != nil {
		return fmt.Errorf("voucher Amount: %w", err)
	}
	v.Voucher = Voucher{ID: id, Amount: amount}
	return nil
}

// interopResult is InteropVoucherResult.
type interopResult struct{ VoucherResult }

// Type is the result's type identifier.
func (*interopResult) Type() datatransfer.TypeIdentifier { return VoucherResultType }

// MarshalCBOR writes {"Owed": uint, "Outcome": text} in canonical order.
func (r *interopResult) MarshalCBOR(w io.Writer) error {
	n, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "Owed", qp.Int(int64(r.Owed)))
		qp.MapEntry(ma, "Outcome", qp.String(r.Outcome))
	})
	if err != nil {
		return err
	}
	return dagcbor.Encode(n, w)
}

// UnmarshalCBOR reads InteropVoucherResult.
func (r *interopResult) UnmarshalCBOR(rd io.Reader) error {
	n, err := decodeMap(rd)
	if err != nil {
		return err
	}
	owed, err := uintField(n, "Owed")
	if err != nil {
		return fmt.Errorf("voucher result Owed: %w", err)
	}
	on, err := n.LookupByString("Outcome")
	if err != nil {
		return fmt.Errorf("voucher result: %w", err)
	}
	outcome, err := on.AsString()
	if err != nil {
		return fmt.Errorf("voucher result Outcome: %w", err)
	}
	r.VoucherResult = VoucherResult{Owed: owed, Outcome: outcome}
	return nil
}

func result(owed uint64, outcome string) *interopResult {
	return &interopResult{VoucherResult{Owed: owed, Outcome: outcome}}
}

// decodeMap reads one DAG-CBOR map.
func decodeMap(r io.Reader) (datamodel.Node, error) {
	nb := basicnode.Prototype.Any.NewBuilder()
	if err := dagcbor.Decode(nb, r); err != nil {
		return nil, err
	}
	n := nb.Build()
	if n.Kind() != datamodel.Kind_Map {
		return nil, fmt.Errorf("not a map but a %s", n.Kind())
	}
	return n, nil
}

// uintField reads a non-negative integer member of a map node.
func uintField(n datamodel.Node, key string) (uint64, error) {
	v, err := n.LookupByString(key)
	if err != nil {
		return 0, err
	}
	i, err := v.AsInt()
	if err != nil {
		return 0, err
	}
	if i < 0 {
		return 0, fmt.Errorf("%s is negative", key)
	}
	return uint64(i), nil
}

// resultJSON is a voucher result for the JSON events.
func resultJSON(r datatransfer.VoucherResult) any {
	if r == nil {
		return nil
	}
	if ir, ok := r.(*interopResult); ok {
		return ir.VoucherResult
	}
	n, err := encoding.EncodeToNode(r)
	if err != nil {
		return fmt.Sprintf("undecodable voucher result: %v", err)
	}
	var buf bytes.Buffer
	if err := dagjson.Encode(n, &buf); err != nil {
		return fmt.Sprintf("undecodable voucher result: %v", err)
	}
	return json.RawMessage(buf.Bytes())
}

func ref(chid datatransfer.ChannelID) ChannelRef {
	return ChannelRef{Initiator: chid.Initiator.String(), Responder: chid.Responder.String(), ID: uint64(chid.ID)}
}

func channelID(ch ChannelRef) (datatransfer.ChannelID, error) {
	i, err := peer.Decode(ch.Initiator)
	if err != nil {
		return datatransfer.ChannelID{}, fmt.Errorf("channel initiator: %w", err)
	}
	r, err := peer.Decode(ch.Responder)
	if err != nil {
		return datatransfer.ChannelID{}, fmt.Errorf("channel responder: %w", err)
	}
	return datatransfer.ChannelID{Initiator: i, Responder: r, ID: datatransfer.TransferID(ch.ID)}, nil
}

// payment is the responder's account of one paid pull: the data limit (bytes the payments so
// far allow), the bytes queued, and whether it is finalizing.
type payment struct {
	limit      uint64
	queued     uint64
	finalizing bool
}

// dtNode is a go-data-transfer v1.15 manager on graphsync.
type dtNode struct {
	cfg  DtConfig
	ev   *events
	out  *Emitter
	self peer.ID
	mgr  datatransfer.Manager
	ctx  context.Context

	mu       sync.Mutex
	payments map[datatransfer.ChannelID]*payment
	// lastRequest: the Owed of the channel's last voucher result, if it was a payment
	// request (initiator).
	lastRequest map[datatransfer.ChannelID]uint64
	// paidRequests: the Owed of the channel's last two payment requests that were paid,
	// latest last (initiator).
	paidRequests map[datatransfer.ChannelID][]uint64
	// payq runs the initiator's payments one at a time, in the order they were asked for.
	payq chan func()
}

// newDtNode starts the manager on st and registers InteropVoucher and InteropVoucherResult.
func newDtNode(ctx context.Context, cfg DtConfig, st *Stack, ev *events, out *Emitter) (dtBackend, error) {
	lsys := delayReads(LinkSystem(st.BS, nil), cfg)
	gs := gsimpl.New(ctx, gsnet.NewFromLibp2pHost(st.Host), lsys, gsimpl.RejectAllRequestsByDefault())
	tp := gstransport.NewTransport(st.Host.ID(), gs)
	var opts []dtimpl.DataTransferOption
	if cfg.Monitor {
		opts = append(opts, dtimpl.ChannelRestartConfig(monitorConfig))
	}
	store := namespace.Wrap(st.DS, ds.NewKey("/datatransfer"))
	mgr, err := dtimpl.NewDataTransfer(store, dtnet.NewFromLibp2pHost(st.Host), tp, opts...)
	if err != nil {
		return nil, err
	}
	n := &dtNode{cfg: cfg, ev: ev, out: out, self: st.Host.ID(), mgr: mgr, ctx: ctx,
		payments: map[datatransfer.ChannelID]*payment{}, lastRequest: map[datatransfer.ChannelID]uint64{},
		paidRequests: map[datatransfer.ChannelID][]uint64{},
		payq:         make(chan func(), 1024)}
	go func() {
		for {
			select {
			case f := <-n.payq:
				f()
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := mgr.RegisterVoucherType(&interopVoucher{}, n); err != nil {
		return nil, err
	}
	if err := mgr.RegisterRevalidator(&interopVoucher{}, n); err != nil {
		return nil, err
	}
	if err := mgr.RegisterVoucherResultType(&interopResult{}); err != nil {
		return nil, err
	}
	mgr.SubscribeToEvents(n.onEvent)
	ready := make(chan error, 1)
	mgr.OnReady(func(err error) { ready <- err })
	if err := mgr.Start(ctx); err != nil {
		return nil, err
	}
	select {
	case err := <-ready:
		if err != nil {
			return nil, fmt.Errorf("data transfer manager: %w", err)
		}
	case <-time.After(30 * time.Second):
		return nil, errors.New("data transfer manager not ready within 30s")
	}
	return n, nil
}

// monitorConfig is --monitor: dt-protocol.md's short test values. "Restart after 1 s without
// progress" is RestartDebounce, v1.15's only restart delay.
var monitorConfig = channelmonitor.Config{
	AcceptTimeout:          10 * time.Second,
	RestartDebounce:        1 * time.Second,
	RestartBackoff:         500 * time.Millisecond,
	MaxConsecutiveRestarts: 5,
	CompleteTimeout:        30 * time.Second,
}

func asVoucher(v datatransfer.Voucher) (*interopVoucher, error) {
	iv, ok := v.(*interopVoucher)
	if !ok {
		return nil, fmt.Errorf("voucher of type %T", v)
	}
	return iv, nil
}

// ValidatePush accepts a push unless --refuse or --accept-push=false.
func (n *dtNode) ValidatePush(_ bool, _ datatransfer.ChannelID, _ peer.ID, voucher datatransfer.Voucher, _ cid.Cid, _ datamodel.Node) (datatransfer.VoucherResult, error) {
	if _, err := asVoucher(voucher); err != nil {
		return nil, err
	}
	if n.cfg.Refuse || !n.cfg.AcceptPush {
		return result(0, OutcomeRefused), datatransfer.ErrRejected
	}
	return result(0, OutcomeAccepted), nil
}

// ValidatePull accepts a pull unless --refuse; with --pay-every or --finalize it opens the
// channel's payment account (a restart keeps it).
func (n *dtNode) ValidatePull(isRestart bool, chid datatransfer.ChannelID, _ peer.ID, voucher datatransfer.Voucher, _ cid.Cid, _ datamodel.Node) (datatransfer.VoucherResult, error) {
	if _, err := asVoucher(voucher); err != nil {
		return nil, err
	}
	if n.cfg.Refuse {
		return result(0, OutcomeRefused), datatransfer.ErrRejected
	}
	if n.cfg.PayEvery > 0 || n.cfg.Finalize {
		n.mu.Lock()
		if _, ok := n.payments[chid]; !ok || !isRestart {
			n.payments[chid] = &payment{limit: n.cfg.PayEvery}
		}
		n.mu.Unlock()
	}
	if isRestart {
		return nil, nil
	}
	return result(0, OutcomeAccepted), nil
}

// paidUpTo is how many bytes the payments so far cover.
func (n *dtNode) paidUpTo(p *payment) uint64 {
	if n.cfg.PayEvery == 0 {
		return 0
	}
	return p.limit - n.cfg.PayEvery
}

// OnPullDataSent pauses at the data limit and asks for BYTES.
func (n *dtNode) OnPullDataSent(chid datatransfer.ChannelID, additional uint64) (bool, datatransfer.VoucherResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.payments[chid]
	if !ok {
		return false, nil, nil
	}
	p.queued += additional
	if n.cfg.PayEvery > 0 && p.queued >= p.limit {
		return true, result(n.cfg.PayEvery, OutcomePaymentRequired), datatransfer.ErrPause
	}
	return true, nil, nil
}

// OnPushDataReceived: pushes are not paid.
func (n *dtNode) OnPushDataReceived(datatransfer.ChannelID, uint64) (bool, datatransfer.VoucherResult, error) {
	return false, nil, nil
}

// OnComplete asks for the final payment with --finalize.
func (n *dtNode) OnComplete(chid datatransfer.ChannelID) (bool, datatransfer.VoucherResult, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.payments[chid]
	if !ok {
		return false, nil, nil
	}
	if !n.cfg.Finalize {
		return true, nil, nil
	}
	p.finalizing = true
	return true, result(p.queued-n.paidUpTo(p), OutcomePaymentRequired), datatransfer.ErrPause
}

// Revalidate takes a payment: enough resumes (paid) or ends finalization (settled).
func (n *dtNode) Revalidate(chid datatransfer.ChannelID, voucher datatransfer.Voucher) (datatransfer.VoucherResult, error) {
	v, err := asVoucher(voucher)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.payments[chid]
	if !ok {
		return nil, nil
	}
	if p.finalizing {
		owed := p.queued - n.paidUpTo(p)
		if v.Amount < owed {
			return result(owed, OutcomePaymentRequired), datatransfer.ErrPause
		}
		delete(n.payments, chid)
		return result(0, OutcomeSettled), datatransfer.ErrResume
	}
	if n.cfg.PayEvery == 0 || p.queued < p.limit {
		// Nothing is owed yet.
		return nil, nil
	}
	if v.Amount < n.cfg.PayEvery {
		return result(n.cfg.PayEvery, OutcomePaymentRequired), datatransfer.ErrPause
	}
	p.limit += n.cfg.PayEvery
	return result(0, OutcomePaid), datatransfer.ErrResume
}

// eventName is Go's name of an event. v1.15.1's datatransfer.Events has no entry for Opened
// (its String() is ""), so that one is named here.
func eventName(code datatransfer.EventCode) string {
	if name, ok := datatransfer.Events[code]; ok {
		return name
	}
	if code == datatransfer.Opened {
		return "Opened"
	}
	return fmt.Sprintf("EventCode(%d)", int(code))
}

// onEvent reports every event; the initiator pays every payment request.
func (n *dtNode) onEvent(event datatransfer.Event, chst datatransfer.ChannelState) {
	chid := chst.ChannelID()
	var vr any
	if event.Code == datatransfer.NewVoucherResult {
		vr = resultJSON(chst.LastVoucherResult())
	}
	n.ev.dt(ref(chid), eventName(event.Code), datatransfer.Statuses[chst.Status()],
		chst.Sent(), chst.Received(), chst.Message(), vr)
	if chid.Initiator != n.self || event.Code != datatransfer.NewVoucherResult {
		return
	}
	res, ok := chst.LastVoucherResult().(*interopResult)
	isRequest := ok && res.Outcome == OutcomePaymentRequired
	n.mu.Lock()
	last, lastWasRequest := n.lastRequest[chid]
	duplicate := isRequest && lastWasRequest && last == res.Owed
	paid := n.paidRequests[chid]
	lateCopy := isRequest && responderFinalizing(datatransfer.Statuses[chst.Status()]) && len(paid) == 2 && paid[0] == res.Owed
	fresh := isRequest && !duplicate && !lateCopy
	if isRequest {
		n.lastRequest[chid] = res.Owed
	} else {
		delete(n.lastRequest, chid)
	}
	if fresh {
		n.paidRequests[chid] = append(paid[max(len(paid)-1, 0):], res.Owed)
	}
	n.mu.Unlock()
	// go-data-transfer v1.15's responder sends a message from its outgoing-block hook (the
	// data-limit payment requests) under each of its extension names, and its initiator
	// decodes both (gsIncomingResponseHook), so each such request is seen twice, mostly back
	// to back. A request equal to the previous result is that copy: the next data-limit
	// request comes after the answer to the payment, on the same graphsync response, and the
	// final request (on the data-transfer network, so it may overtake that answer) always
	// owes less than BYTES. go-graphsync may also carry the copy on the response's next
	// message, after the final request has overtaken it and the responder has begun
	// finalizing: a request then equal to the one paid before the final one is that late
	// copy (no data-limit request follows the final one, and this initiator pays every
	// request in full, so none is asked again).
	if !fresh {
		return
	}
	first, err := asVoucher(chst.Voucher())
	if err != nil {
		return
	}
	v := Voucher{ID: first.ID, Amount: res.Owed}
	n.payq <- func() { n.pay(chid, v) }
}

func (n *dtNode) pay(chid datatransfer.ChannelID, v Voucher) {
	err := n.mgr.SendVoucher(n.ctx, chid, &interopVoucher{Voucher: v})
	if err != nil {
		// SendVoucher sends, then records the voucher on the channel: a final payment can
		// complete the channel before it is recorded.
		if chst, serr := n.mgr.ChannelState(n.ctx, chid); serr == nil && chst.Status() == datatransfer.Completed {
			err = nil
		}
	}
	f := Fields{"channel": ref(chid), "amount": v.Amount}
	if err != nil {
		f["error"] = err.Error()
	}
	n.out.Emit("paid", f)
}

// Open uses the node's context, not the command's: the transport's graphsync request lives
// on the context it is opened with.
func (n *dtNode) Open(_ context.Context, pull bool, p peer.ID, root cid.Cid, sel datamodel.Node, v Voucher, voucherType string) (ChannelRef, error) {
	iv := &interopVoucher{Voucher: v}
	if voucherType != VoucherType {
		iv.typ = datatransfer.TypeIdentifier(voucherType)
	}
	var chid datatransfer.ChannelID
	var err error
	if pull {
		chid, err = n.mgr.OpenPullDataChannel(n.ctx, p, iv, root, sel)
	} else {
		chid, err = n.mgr.OpenPushDataChannel(n.ctx, p, iv, root, sel)
	}
	return ref(chid), err
}

func (n *dtNode) withChannel(ch ChannelRef, f func(datatransfer.ChannelID) error) error {
	chid, err := channelID(ch)
	if err != nil {
		return err
	}
	return f(chid)
}

func (n *dtNode) Pause(ctx context.Context, ch ChannelRef) error {
	return n.withChannel(ch, func(c datatransfer.ChannelID) error { return n.mgr.PauseDataTransferChannel(ctx, c) })
}

func (n *dtNode) Resume(ctx context.Context, ch ChannelRef) error {
	return n.withChannel(ch, func(c datatransfer.ChannelID) error { return n.mgr.ResumeDataTransferChannel(ctx, c) })
}

func (n *dtNode) Cancel(ctx context.Context, ch ChannelRef) error {
	return n.withChannel(ch, func(c datatransfer.ChannelID) error { return n.mgr.CloseDataTransferChannel(ctx, c) })
}

// Restart uses the node's context, like Open: a restarted pull's graphsync request lives on
// it.
func (n *dtNode) Restart(_ context.Context, ch ChannelRef) error {
	return n.withChannel(ch, func(c datatransfer.ChannelID) error { return n.mgr.RestartDataTransferChannel(n.ctx, c) })
}

func (n *dtNode) SendVoucher(ctx context.Context, ch ChannelRef, v Voucher) error {
	return n.withChannel(ch, func(c datatransfer.ChannelID) error {
		return n.mgr.SendVoucher(ctx, c, &interopVoucher{Voucher: v})
	})
}

func (n *dtNode) State(ctx context.Context, ch ChannelRef) (Fields, error) {
	chid, err := channelID(ch)
	if err != nil {
		return nil, err
	}
	chst, err := n.mgr.ChannelState(ctx, chid)
	if err != nil {
		return nil, err
	}
	results := []any{}
	for _, r := range chst.VoucherResults() {
		results = append(results, resultJSON(r))
	}
	return Fields{
		"status":          datatransfer.Statuses[chst.Status()],
		"sent":            chst.Sent(),
		"received":        chst.Received(),
		"message":         chst.Message(),
		"is_pull":         chst.IsPull(),
		"base_cid":        chst.BaseCID().String(),
		"voucher_results": results,
	}, nil
}

func (n *dtNode) Stop(ctx context.Context) error { return n.mgr.Stop(ctx) }
