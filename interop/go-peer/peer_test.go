package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-graphsync"
)

// eventSink decodes each line an Emitter writes and forwards it on a channel.
type eventSink struct {
	t      *testing.T
	events chan map[string]any
}

func newEventSink(t *testing.T) *eventSink {
	return &eventSink{t: t, events: make(chan map[string]any, 4096)}
}

func (s *eventSink) Write(p []byte) (int, error) {
	var ev map[string]any
	if err := json.Unmarshal(p, &ev); err != nil {
		s.t.Errorf("emitted line %q is not JSON: %v", p, err)
		return len(p), nil
	}
	s.events <- ev
	return len(p), nil
}

// waitFor returns the next event named name, failing the test after a timeout.
func (s *eventSink) waitFor(name string) map[string]any {
	s.t.Helper()
	return s.waitForAny(name)
}

// waitForAny returns the next event with one of the given names, skipping others.
func (s *eventSink) waitForAny(names ...string) map[string]any {
	s.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case ev := <-s.events:
			for _, name := range names {
				if ev["event"] == name {
					return ev
				}
			}
		case <-timeout:
			s.t.Fatalf("none of %q within 30s", names)
		}
	}
}

// servePeer starts Serve on loopback with the given CARs and returns the /p2p address, the
// responder's events and a function that stops it.
func servePeer(t *testing.T, cfg ServeConfig) (string, *eventSink, func()) {
	t.Helper()
	stdinR, stdinW := io.Pipe()
	return servePeerWithStdin(t, cfg, stdinR, stdinW)
}

// servePeerWithStdin is servePeer with the caller holding the command pipe.
func servePeerWithStdin(t *testing.T, cfg ServeConfig, stdinR *io.PipeReader, stdinW *io.PipeWriter) (string, *eventSink, func()) {
	t.Helper()
	cfg.Listen = "/ip4/127.0.0.1/tcp/0"
	sink := newEventSink(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, cfg, stdinR, NewEmitter(sink)) }()
	listening := sink.waitFor("listening")
	addrs, ok := listening["addrs"].([]any)
	if !ok || len(addrs) == 0 {
		t.Fatalf("listening event without addrs: %v", listening)
	}
	addr := addrs[0].(string) + "/p2p/" + listening["peer_id"].(string)
	stop := func() {
		_ = stdinW.Close()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		cancel()
	}
	return addr, sink, stop
}

// fixture imports a pseudo-random file and writes its CAR; it returns the root and CAR path.
func fixture(t *testing.T, size int, o ImportOptions) (cid.Cid, string) {
	t.Helper()
	bs := NewBlockstore()
	root, _, err := ImportFile(bytes.NewReader(PseudoRandom(size)), bs, o)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fixture.car")
	if _, err := WriteCarFile(context.Background(), path, bs, root, nil); err != nil {
		t.Fatal(err)
	}
	return root, path
}

func TestImportMatchesKnownKuboCids(t *testing.T) {
	cases := []struct {
		data    string
		version int
		want    string
	}{
		{"", 0, "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"},
		{"", 1, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"},
		{"hello world\n", 0, "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o"},
		{"hello world\n", 1, "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"},
	}
	for _, c := range cases {
		root, blocks, err := ImportFile(bytes.NewReader([]byte(c.data)), NewBlockstore(), KuboOptions(c.version, nil))
		if err != nil {
			t.Fatal(err)
		}
		if root.String() != c.want || blocks != 1 {
			t.Errorf("import %q v%d = %s (%d blocks), want %s (1 block)", c.data, c.version, root, blocks, c.want)
		}
	}
}

func TestImportCountsEveryBlockOfAMultiLevelFile(t *testing.T) {
	// 5 chunks of 262144 bytes (the last one short) under one root: 6 blocks.
	root, blocks, err := ImportFile(bytes.NewReader(PseudoRandom(4*262144+1)), NewBlockstore(), KuboOptions(1, nil))
	if err != nil {
		t.Fatal(err)
	}
	if blocks != 6 || root.Prefix().Codec != cid.DagProtobuf || root.Version() != 1 {
		t.Errorf("got %s with %d blocks, want a CIDv1 dag-pb root over 6 blocks", root, blocks)
	}
}

func TestCarWriteReadRoundTrip(t *testing.T) {
	root, path := fixture(t, 1_000_000, KuboOptions(0, nil))
	bs := NewBlockstore()
	roots, n, err := ReadCarFile(context.Background(), path, bs)
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0] != root || n != 5 {
		t.Fatalf("read roots %v and %d blocks, want [%s] and 5", roots, n, root)
	}
	var again bytes.Buffer
	if _, err := WriteCar(context.Background(), &again, bs, root, nil); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(orig, again.Bytes()) {
		t.Error("re-exported CAR differs from the original")
	}
}

func TestRequestFromServeRoundTripsTheCar(t *testing.T) {
	for _, o := range []ImportOptions{KuboOptions(0, nil), KuboOptions(1, nil)} {
		root, carPath := fixture(t, 1_000_000, o)
		addr, served, stop := servePeer(t, ServeConfig{Cars: []string{carPath}})
		out := filepath.Join(t.TempDir(), "out.car")
		sink := newEventSink(t)
		res, err := Request(context.Background(), RequestConfig{Peer: addr, Root: root, Out: out}, bytes.NewReader(nil), NewEmitter(sink))
		if err != nil {
			t.Fatal(err)
		}
		if res.Status != graphsync.RequestCompletedFull || len(res.Errors) != 0 || res.Blocks != 5 {
			t.Errorf("request result %+v, want full completion with 5 blocks", res)
		}
		want, err := os.ReadFile(carPath)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(want, got) {
			t.Errorf("cid v%d: received CAR (%d bytes) differs from the served CAR (%d bytes)", o.CidVersion, len(got), len(want))
		}
		received := served.waitFor("request_received")
		if received["root"] != root.String() || received["accepted"] != true {
			t.Errorf("request_received = %v", received)
		}
		completed := served.waitFor("completed")
		if completed["status"] != float64(graphsync.RequestCompletedFull) || completed["blocks"] != float64(5) {
			t.Errorf("completed = %v", completed)
		}
		done := sink.waitFor("done")
		if done["blocks"] != float64(5) {
			t.Errorf("done = %v", done)
		}
		stop()
	}
}

func TestRequestWithSelectorGetsOnlyTheRoot(t *testing.T) {
	root, carPath := fixture(t, 1_000_000, KuboOptions(1, nil))
	addr, _, stop := servePeer(t, ServeConfig{Cars: []string{carPath}})
	defer stop()
	// Match the root node and follow nothing.
	sel, err := decodeDagJSON([]byte(`{".": {}}`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Request(context.Background(), RequestConfig{Peer: addr, Root: root, Selector: sel}, bytes.NewReader(nil), NewEmitter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != graphsync.RequestCompletedFull || res.Blocks != 1 {
		t.Errorf("request result %+v, want full completion with 1 block", res)
	}
}

func TestServeRejectsWhenAskedTo(t *testing.T) {
	root, carPath := fixture(t, 1000, KuboOptions(1, nil))
	addr, served, stop := servePeer(t, ServeConfig{Cars: []string{carPath}, Reject: true})
	defer stop()
	ext, err := decodeDagJSON([]byte(`{"hello": [1, 2]}`))
	if err != nil {
		t.Fatal(err)
	}
	exts := []graphsync.ExtensionData{{Name: "test/ext", Data: ext}}
	res, err := Request(context.Background(), RequestConfig{Peer: addr, Root: root, Extensions: exts}, bytes.NewReader(nil), NewEmitter(io.Discard))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != graphsync.RequestRejected || res.Blocks != 0 || len(res.Errors) == 0 {
		t.Errorf("request result %+v, want rejection with no blocks and an error", res)
	}
	received := served.waitFor("request_received")
	gotExt, _ := json.Marshal(received["extensions"])
	if received["accepted"] != false || string(gotExt) != `{"test/ext":{"hello":[1,2]}}` {
		t.Errorf("request_received = %v", received)
	}
}

func TestPseudoRandomIsXorshift64StarSeededWithTheSize(t *testing.T) {
	// Expected values computed independently (Python, from the definition in README.md).
	if got := hex.EncodeToString(PseudoRandom(16)); got != "444681d4fdb6641361a3b6ac7bcadcec" {
		t.Errorf("PseudoRandom(16) = %s", got)
	}
	sum := sha256.Sum256(PseudoRandom(1048583))
	if got := hex.EncodeToString(sum[:]); got != "68262ad73ca1ff346cac90653cae8cdc90ba0f42544d2bc0db1d38043d7243ae" {
		t.Errorf("sha256(PseudoRandom(1048583)) = %s", got)
	}
}

func TestSelectorAndExtensionsRoundTripThroughDagJSON(t *testing.T) {
	for _, in := range []string{`{"R":{":>":{"a":{">":{"@":{}}}},"l":{"none":{}}}}`, `{"/":{"bytes":"AAE"}}`} {
		n, err := decodeDagJSON([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		out, err := encodeDagJSON(n)
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != in {
			t.Errorf("dag-json %s came back as %s", in, out)
		}
	}
}

func TestServeReportsCommandsOnUnknownRequests(t *testing.T) {
	sink := newEventSink(t)
	stdinR, stdinW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		served <- Serve(context.Background(), ServeConfig{Listen: "/ip4/127.0.0.1/tcp/0"}, stdinR, NewEmitter(sink))
	}()
	sink.waitFor("listening")
	id := graphsync.NewRequestID().String()
	if _, err := io.WriteString(stdinW, `{"cmd":"pause","request":"`+id+`"}`+"\n"+`{"cmd":"nonsense","request":"`+id+`"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	for _, cmd := range []string{"pause", "nonsense"} {
		failed := sink.waitFor("command_failed")
		if failed["cmd"] != cmd || failed["request"] != id {
			t.Errorf("command_failed = %v, want cmd %s on %s", failed, cmd, id)
		}
	}
	if _, err := io.WriteString(stdinW, `{"cmd":"quit"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	sink.waitFor("stopped")
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

func TestServePausesAfterBlocksAndResumesOnUnpause(t *testing.T) {
	root, carPath := fixture(t, 1_000_000, KuboOptions(0, nil))
	stdinR, stdinW := io.Pipe()
	addr, served, stop := servePeerWithStdin(t, ServeConfig{Cars: []string{carPath}, PauseAfterBlocks: 2}, stdinR, stdinW)
	defer stop()
	out := filepath.Join(t.TempDir(), "out.car")
	type result struct {
		res RequestResult
		err error
	}
	requested := make(chan result, 1)
	go func() {
		res, err := Request(context.Background(), RequestConfig{Peer: addr, Root: root, Out: out}, bytes.NewReader(nil), NewEmitter(io.Discard))
		requested <- result{res, err}
	}()
	paused := served.waitFor("paused")
	id, _ := paused["request"].(string)
	if paused["blocks"] != float64(2) || id == "" {
		t.Fatalf("paused = %v", paused)
	}
	if _, err := io.WriteString(stdinW, `{"cmd":"unpause","request":"`+id+`"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	// The response can only complete after the unpause command ran.
	var order []string
	for len(order) == 0 || order[len(order)-1] != "completed" {
		ev := served.waitForAny("command_done", "command_failed", "completed")
		order = append(order, ev["event"].(string))
		if ev["event"] == "completed" && (ev["status"] != float64(graphsync.RequestCompletedFull) || ev["blocks"] != float64(5)) {
			t.Errorf("completed = %v", ev)
		}
	}
	if len(order) != 2 || order[0] != "command_done" {
		t.Errorf("events after the pause: %v, want [command_done completed]", order)
	}
	r := <-requested
	if r.err != nil || r.res.Status != graphsync.RequestCompletedFull || r.res.Blocks != 5 {
		t.Fatalf("request = %+v, %v", r.res, r.err)
	}
	want, _ := os.ReadFile(carPath)
	got, _ := os.ReadFile(out)
	if !bytes.Equal(want, got) {
		t.Error("CAR received across a pause differs from the served CAR")
	}
}

// requestEvents runs Request against addr and returns its result and events.
func requestEvents(t *testing.T, cfg RequestConfig) (RequestResult, []map[string]any) {
	t.Helper()
	sink := newEventSink(t)
	res, err := Request(context.Background(), cfg, bytes.NewReader(nil), NewEmitter(sink))
	if err != nil {
		t.Fatal(err)
	}
	var events []map[string]any
	for {
		select {
		case ev := <-sink.events:
			events = append(events, ev)
		default:
			return res, events
		}
	}
}

func TestResponderCancelAfterBlocksEndsWith35(t *testing.T) {
	root, carPath := fixture(t, 8_000_000, KuboOptions(1, nil))
	addr, served, stop := servePeer(t, ServeConfig{Cars: []string{carPath}, CancelAfterBlocks: 2})
	defer stop()
	res, _ := requestEvents(t, RequestConfig{Peer: addr, Root: root, StatusWait: 5 * time.Second})
	if res.Status != graphsync.RequestCancelled {
		t.Errorf("status %v, want RequestCancelled (35)", res.Status)
	}
	if ev := served.waitFor("cancelled_response"); ev["blocks"] != float64(2) || ev["error"] != nil {
		t.Errorf("cancelled_response = %v", ev)
	}
}

func TestRequesterCancelAfterBlocksStopsTheRequest(t *testing.T) {
	root, carPath := fixture(t, 8_000_000, KuboOptions(1, nil))
	addr, _, stop := servePeer(t, ServeConfig{Cars: []string{carPath}})
	defer stop()
	res, events := requestEvents(t, RequestConfig{Peer: addr, Root: root, CancelAfterBlocks: 2, StatusWait: 5 * time.Second})
	if !res.Cancelled || res.Status.IsTerminal() && res.Status.IsSuccess() {
		t.Errorf("result %+v, want a cancelled request without success", res)
	}
	blocks := 0
	for _, ev := range events {
		if ev["event"] == "block" {
			blocks++
		}
	}
	if blocks < 2 || blocks >= 32 {
		t.Errorf("%d blocks arrived, want at least 2 and not all 32", blocks)
	}
}

func TestResponderPauseIsUnpausedByTheRequestersUpdate(t *testing.T) {
	root, carPath := fixture(t, 1_000_000, KuboOptions(1, nil))
	addr, served, stop := servePeer(t, ServeConfig{Cars: []string{carPath}, PauseAfterBlocks: 2, UnpauseOnUpdate: true})
	defer stop()
	update, err := parseExtensionFlags([]string{`interop/resume=true`})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.car")
	res, events := requestEvents(t, RequestConfig{Peer: addr, Root: root, Out: out, UpdateOnPause: update, StatusWait: 5 * time.Second})
	if res.Status != graphsync.RequestCompletedFull || len(res.Errors) != 0 {
		t.Errorf("result %+v, want a full completion", res)
	}
	sent := false
	for _, ev := range events {
		sent = sent || ev["event"] == "update_sent"
	}
	if !sent {
		t.Error("no update_sent event")
	}
	served.waitFor("paused")
	if ev := served.waitFor("request_updated"); fmt.Sprint(ev["extensions"]) != "map[interop/resume:true]" {
		t.Errorf("request_updated = %v", ev)
	}
	want, _ := os.ReadFile(carPath)
	got, _ := os.ReadFile(out)
	if !bytes.Equal(want, got) {
		t.Error("CAR received across the pause differs from the served CAR")
	}
}

func TestParallelRequestsWithTheirOwnDedupKeysAllComplete(t *testing.T) {
	root, carPath := fixture(t, 1_000_000, KuboOptions(0, nil))
	addr, served, stop := servePeer(t, ServeConfig{Cars: []string{carPath}})
	defer stop()
	res, events := requestEvents(t, RequestConfig{Peer: addr, Root: root, Parallel: 3, DedupKeyPerRequest: true, StatusWait: 5 * time.Second})
	if res.Status != graphsync.RequestCompletedFull || res.Blocks != 5 {
		t.Errorf("result %+v, want every request complete and 5 blocks stored", res)
	}
	dones := map[float64]bool{}
	for _, ev := range events {
		if ev["event"] == "done" && ev["status"] == float64(graphsync.RequestCompletedFull) {
			dones[ev["index"].(float64)] = true
		}
	}
	if len(dones) != 3 {
		t.Errorf("completed requests %v, want indexes 0, 1, 2", dones)
	}
	keys := map[string]bool{}
	for i := 0; i < 3; i++ {
		ev := served.waitFor("request_received")
		exts, _ := ev["extensions"].(map[string]any)
		key, _ := exts[string(graphsync.ExtensionDeDupByKey)].(string)
		keys[key] = true
	}
	if len(keys) != 3 || !keys["interop-0"] || !keys["interop-2"] {
		t.Errorf("dedup keys %v, want interop-0..2", keys)
	}
}

func TestRequesterWithEveryBlockLocalNeverAsks(t *testing.T) {
	root, carPath := fixture(t, 1_000_000, KuboOptions(1, nil))
	addr, _, stop := servePeer(t, ServeConfig{Cars: []string{carPath}})
	defer stop()
	// go-graphsync's requester loads locally until its first miss: nothing is sent.
	res, events := requestEvents(t, RequestConfig{Peer: addr, Root: root, Have: carPath, StatusWait: 100 * time.Millisecond})
	if res.Status != 0 || len(res.Errors) != 0 {
		t.Errorf("result %+v, want no status and no error", res)
	}
	for _, ev := range events {
		if ev["event"] == "block" && ev["on_wire"] != float64(0) {
			t.Errorf("block from the network: %v", ev)
		}
		if ev["event"] == "response" {
			t.Errorf("a response arrived: %v", ev)
		}
	}
}
