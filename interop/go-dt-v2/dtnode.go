package main

// The data-transfer node on go-data-transfer v2: manager, validator, paid retrieval with data
// limits and finalization, auto-payment by the initiator, and the events as JSON.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	datatransfer "github.com/filecoin-project/go-data-transfer/v2"
	"github.com/filecoin-project/go-data-transfer/v2/channelmonitor"
	dtimpl "github.com/filecoin-project/go-data-transfer/v2/impl"
	"github.com/filecoin-project/go-data-transfer/v2/message"
	"github.com/filecoin-project/go-data-transfer/v2/message/types"
	dtnet "github.com/filecoin-project/go-data-transfer/v2/network"
	gstransport "github.com/filecoin-project/go-data-transfer/v2/transport/graphsync"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	gsimpl "github.com/ipfs/go-graphsync/impl"
	gsnet "github.com/ipfs/go-graphsync/network"
	"github.com/ipld/go-ipld-prime/codec/dagjson"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/libp2p/go-libp2p/core/peer"
)

// dtNode is a go-data-transfer v2 manager on graphsync.
type dtNode struct {
	cfg  DtConfig
	ev   *events
	out  *Emitter
	self peer.ID
	mgr  datatransfer.Manager
	tp   *gstransport.Transport
	// payq runs the initiator's payments one at a time, in the order they were asked for.
	payq chan func()
	ctx  context.Context

	mu sync.Mutex
	// lastRequest: the Owed of the channel's last voucher result, if it was a payment
	// request (initiator).
	lastRequest map[datatransfer.ChannelID]uint64
	// paidRequests: the Owed of the channel's last two payment requests that were paid,
	// latest last (initiator, with --skip-request-copies).
	paidRequests map[datatransfer.ChannelID][]uint64
}

// newDtNode starts the manager on st and registers InteropVoucher.
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
	n := &dtNode{cfg: cfg, ev: ev, out: out, self: st.Host.ID(), mgr: mgr, tp: tp, ctx: ctx,
		payq: make(chan func(), 1024), lastRequest: map[datatransfer.ChannelID]uint64{},
		paidRequests: map[datatransfer.ChannelID][]uint64{}}
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
	if err := mgr.RegisterVoucherType(VoucherType, n); err != nil {
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
// progress" is RestartDebounce, v2's only restart delay.
var monitorConfig = channelmonitor.Config{
	AcceptTimeout:          10 * time.Second,
	RestartDebounce:        1 * time.Second,
	RestartBackoff:         500 * time.Millisecond,
	MaxConsecutiveRestarts: 5,
	CompleteTimeout:        30 * time.Second,
}

// voucherNode builds InteropVoucher.
func voucherNode(v Voucher) datamodel.Node {
	n, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "ID", qp.String(v.ID))
		qp.MapEntry(ma, "Amount", qp.Int(int64(v.Amount)))
	})
	if err != nil {
		panic(fmt.Sprintf("building a two-entry map cannot fail: %v", err))
	}
	return n
}

// resultVoucher builds InteropVoucherResult as a typed voucher.
func resultVoucher(owed uint64, outcome string) *datatransfer.TypedVoucher {
	n, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "Owed", qp.Int(int64(owed)))
		qp.MapEntry(ma, "Outcome", qp.String(outcome))
	})
	if err != nil {
		panic(fmt.Sprintf("building a two-entry map cannot fail: %v", err))
	}
	return &datatransfer.TypedVoucher{Voucher: n, Type: VoucherResultType}
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

// decodeVoucher reads an InteropVoucher node.
func decodeVoucher(n datamodel.Node) (Voucher, error) {
	if n == nil {
		return Voucher{}, errors.New("no voucher")
	}
	idNode, err := n.LookupByString("ID")
	if err != nil {
		return Voucher{}, fmt.Errorf("voucher: %w", err)
	}
	id, err := idNode.AsString()
	if err != nil {
		return Voucher{}, fmt.Errorf("voucher ID: %w", err)
	}
	amount, err := uintField(n, "Amount")
	if err != nil {
		return Voucher{}, fmt.Errorf("voucher Amount: %w", err)
	}
	return Voucher{ID: id, Amount: amount}, nil
}

// decodeResult reads an InteropVoucherResult node.
func decodeResult(tv datatransfer.TypedVoucher) (VoucherResult, bool) {
	if tv.Type != VoucherResultType || tv.Voucher == nil {
		return VoucherResult{}, false
	}
	owed, err := uintField(tv.Voucher, "Owed")
	if err != nil {
		return VoucherResult{}, false
	}
	on, err := tv.Voucher.LookupByString("Outcome")
	if err != nil {
		return VoucherResult{}, false
	}
	outcome, err := on.AsString()
	if err != nil {
		return VoucherResult{}, false
	}
	return VoucherResult{Owed: owed, Outcome: outcome}, true
}

// resultJSON is a voucher result for the JSON events: the node as dag-json.
func resultJSON(tv datatransfer.TypedVoucher) any {
	if tv.Voucher == nil {
		return nil
	}
	var buf bytes.Buffer
	if err := dagjson.Encode(tv.Voucher, &buf); err != nil {
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

// ValidatePush accepts a push unless --refuse or --accept-push=false.
func (n *dtNode) ValidatePush(_ datatransfer.ChannelID, _ peer.ID, voucher datamodel.Node, _ cid.Cid, _ datamodel.Node) (datatransfer.ValidationResult, error) {
	if _, err := decodeVoucher(voucher); err != nil {
		return datatransfer.ValidationResult{}, err
	}
	if n.cfg.Refuse || !n.cfg.AcceptPush {
		return datatransfer.ValidationResult{Accepted: false, VoucherResult: resultVoucher(0, OutcomeRefused)}, nil
	}
	return datatransfer.ValidationResult{Accepted: true, VoucherResult: resultVoucher(0, OutcomeAccepted)}, nil
}

// ValidatePull accepts a pull unless --refuse; with --pay-every the first data limit is
// BYTES, with --finalize the channel requires finalization.
func (n *dtNode) ValidatePull(_ datatransfer.ChannelID, _ peer.ID, voucher datamodel.Node, _ cid.Cid, _ datamodel.Node) (datatransfer.ValidationResult, error) {
	if _, err := decodeVoucher(voucher); err != nil {
		return datatransfer.ValidationResult{}, err
	}
	if n.cfg.Refuse {
		return datatransfer.ValidationResult{Accepted: false, VoucherResult: resultVoucher(0, OutcomeRefused)}, nil
	}
	return datatransfer.ValidationResult{
		Accepted:             true,
		VoucherResult:        resultVoucher(0, OutcomeAccepted),
		DataLimit:            n.cfg.PayEvery,
		RequiresFinalization: n.cfg.Finalize,
	}, nil
}

// ValidateRestart accepts a restart with the channel's current limit and finalization.
func (n *dtNode) ValidateRestart(_ datatransfer.ChannelID, chst datatransfer.ChannelState) (datatransfer.ValidationResult, error) {
	if n.cfg.Refuse {
		return datatransfer.ValidationResult{Accepted: false, VoucherResult: resultVoucher(0, OutcomeRefused)}, nil
	}
	return datatransfer.ValidationResult{
		Accepted:             true,
		DataLimit:            chst.DataLimit(),
		RequiresFinalization: chst.RequiresFinalization(),
	}, nil
}

// paidUpTo is how many bytes the payments so far cover on a paid channel.
func (n *dtNode) paidUpTo(chst datatransfer.ChannelState) uint64 {
	if n.cfg.PayEvery == 0 || chst.DataLimit() < n.cfg.PayEvery {
		return 0
	}
	return chst.DataLimit() - n.cfg.PayEvery
}

// onEvent reports every event and runs the payments of both sides. Manager calls run on
// their own goroutines: the subscriber runs inside the channel state machine.
func (n *dtNode) onEvent(event datatransfer.Event, chst datatransfer.ChannelState) {
	chid := chst.ChannelID()
	var vr any
	if event.Code == datatransfer.NewVoucherResult {
		vr = resultJSON(chst.LastVoucherResult())
	}
	n.ev.dt(ref(chid), datatransfer.Events[event.Code], datatransfer.Statuses[chst.Status()],
		chst.Sent(), chst.Received(), chst.Message(), vr)

	if chid.Initiator == n.self {
		if event.Code != datatransfer.NewVoucherResult {
			return
		}
		res, ok := decodeResult(chst.LastVoucherResult())
		if !n.freshRequest(chid, chst.Status(), res, ok) {
			return
		}
		first, err := decodeVoucher(chst.Voucher().Voucher)
		if err != nil {
			return
		}
		v := Voucher{ID: first.ID, Amount: res.Owed}
		n.payq <- func() { n.pay(chid, v) }
		return
	}
	if !chst.IsPull() || (n.cfg.PayEvery == 0 && !n.cfg.Finalize) {
		return
	}
	switch event.Code {
	case datatransfer.DataLimitExceeded:
		go n.sendResult(chid, resultVoucher(n.cfg.PayEvery, OutcomePaymentRequired))
	case datatransfer.BeginFinalizing:
		go n.sendResult(chid, resultVoucher(chst.Queued()-n.paidUpTo(chst), OutcomePaymentRequired))
	case datatransfer.NewVoucher:
		v, err := decodeVoucher(chst.LastVoucher().Voucher)
		if err != nil {
			return
		}
		limit := chst.DataLimit()
		if chst.Status() == datatransfer.Finalizing {
			owed := chst.Queued() - n.paidUpTo(chst)
			if v.Amount < owed {
				go n.sendResult(chid, resultVoucher(owed, OutcomePaymentRequired))
				return
			}
			go n.update(chid, datatransfer.ValidationResult{Accepted: true, DataLimit: limit,
				VoucherResult: resultVoucher(0, OutcomeSettled)})
			return
		}
		if n.cfg.PayEvery == 0 || chst.Queued() < limit {
			// Nothing is owed yet.
			return
		}
		if v.Amount < n.cfg.PayEvery {
			go n.sendResult(chid, resultVoucher(n.cfg.PayEvery, OutcomePaymentRequired))
			return
		}
		go n.update(chid, datatransfer.ValidationResult{Accepted: true, DataLimit: limit + n.cfg.PayEvery,
			RequiresFinalization: n.cfg.Finalize, VoucherResult: resultVoucher(0, OutcomePaid)})
	}
}

// freshRequest says whether a voucher result is a payment request to pay. With
// --skip-request-copies a request equal to the one before is not: a go-data-transfer v1.15
// responder (and the Rust one) sends each data-limit request under both extension names and
// the initiator decodes both, so a request arrives twice, back to back, and such a responder
// sends the answer to a payment and the next request on the same graphsync response. Paying
// the copy would overpay, and an overpaid responder settles at once on a payment still in
// flight, racing its own finalization request (this initiator may then apply the two out of
// order). A go-data-transfer v2 responder sends no copies, but its next request may overtake
// the answer to the payment (both go on the data-transfer network), so against it the
// option stays off. go-graphsync may also carry the copy on the response's next message,
// after the final request (data-transfer network) has overtaken it and the responder has
// begun finalizing: a request then equal to the one paid before the final one is that late
// copy (no data-limit request follows the final one, and this initiator pays every request
// in full, so none is asked again).
func (n *dtNode) freshRequest(chid datatransfer.ChannelID, status datatransfer.Status, res VoucherResult, ok bool) bool {
	isRequest := ok && res.Outcome == OutcomePaymentRequired
	if !n.cfg.SkipRequestCopies {
		return isRequest
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	last, lastWasRequest := n.lastRequest[chid]
	if !isRequest {
		delete(n.lastRequest, chid)
		return false
	}
	n.lastRequest[chid] = res.Owed
	paid := n.paidRequests[chid]
	lateCopy := responderFinalizing(datatransfer.Statuses[status]) && len(paid) == 2 && paid[0] == res.Owed
	if (lastWasRequest && last == res.Owed) || lateCopy {
		return false
	}
	n.paidRequests[chid] = append(paid[max(len(paid)-1, 0):], res.Owed)
	return true
}

func (n *dtNode) pay(chid datatransfer.ChannelID, v Voucher) {
	err := n.mgr.SendVoucher(n.ctx, chid, datatransfer.TypedVoucher{Voucher: voucherNode(v), Type: VoucherType})
	if err != nil {
		// SendVoucher sends, then records the voucher on the channel: a final payment can
		// complete the channel (and shut its state machine down) before it is recorded.
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

func (n *dtNode) sendResult(chid datatransfer.ChannelID, res *datatransfer.TypedVoucher) {
	if err := n.mgr.SendVoucherResult(n.ctx, chid, *res); err != nil {
		n.out.Emit("error", Fields{"channel": ref(chid), "error": "send voucher result: " + err.Error()})
	}
}

func (n *dtNode) update(chid datatransfer.ChannelID, res datatransfer.ValidationResult) {
	err := n.mgr.UpdateValidationStatus(n.ctx, chid, res)
	if err != nil && strings.Contains(err.Error(), "request is not paused") {
		err = n.retryResume(chid, res)
	}
	if err != nil {
		n.out.Emit("error", Fields{"channel": ref(chid), "error": "update validation status: " + err.Error()})
	}
}

// retryResume works around a race in go-data-transfer v2: a payment that arrives before
// graphsync has applied the data-limit pause (the pause is applied after the outgoing-block
// hook returns) makes the manager record the resume, but graphsync's Unpause fails, and its
// message (the voucher result) is dropped; graphsync then pauses for good. Unpause again,
// with the same message, until graphsync is paused.
func (n *dtNode) retryResume(chid datatransfer.ChannelID, res datatransfer.ValidationResult) error {
	msg, err := message.ValidationResultResponse(types.VoucherResultMessage, chid.ID, res, nil, false)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := n.tp.ResumeChannel(n.ctx, msg, chid)
		if err == nil || !strings.Contains(err.Error(), "request is not paused") || time.Now().After(deadline) {
			return err
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Open uses the node's context, not the command's: the transport's graphsync request lives
// on the context it is opened with.
func (n *dtNode) Open(_ context.Context, pull bool, p peer.ID, root cid.Cid, sel datamodel.Node, v Voucher, voucherType string) (ChannelRef, error) {
	tv := datatransfer.TypedVoucher{Voucher: voucherNode(v), Type: datatransfer.TypeIdentifier(voucherType)}
	var chid datatransfer.ChannelID
	var err error
	if pull {
		chid, err = n.mgr.OpenPullDataChannel(n.ctx, p, tv, root, sel)
	} else {
		chid, err = n.mgr.OpenPushDataChannel(n.ctx, p, tv, root, sel)
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
		return n.mgr.SendVoucher(ctx, c, datatransfer.TypedVoucher{Voucher: voucherNode(v), Type: VoucherType})
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
