package main

// Go↔Go tests of the dt driver, two nodes in one process over loopback TCP, driven through
// the JSON lines of ../dt-protocol.md exactly as the xtask harness drives the binaries. This
// file is shared by symbolic link with the go-dt-v115 module.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	"github.com/ipld/go-ipld-prime/linking"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
)

// fixtureDir is ../shared/fixtures/car beside the repository; a missing folder fails.
const fixtureDir = "../../../shared/fixtures/car"

// waitLimit bounds every wait for an event.
const waitLimit = 20 * time.Second

// dtPeer is one dt node run by dtMain with its stdin and events.
type dtPeer struct {
	t      *testing.T
	name   string
	mu     sync.Mutex
	events []map[string]any
	stdin  io.WriteCloser
	done   chan error
	cancel context.CancelFunc
	addr   string
	id     string
	// proc is the peer's process when it runs as one (startProc).
	proc *exec.Cmd
}

func (p *dtPeer) Write(b []byte) (int, error) {
	var ev map[string]any
	// Channel ids are uint64s near 1.8e18 (Unix nanoseconds): keep them exact.
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&ev); err != nil {
		p.t.Errorf("%s: emitted line %q is not JSON: %v", p.name, b, err)
		return len(b), nil
	}
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	return len(b), nil
}

// startDt runs `dt ARGS` in this process until the test ends.
func startDt(t *testing.T, name string, args ...string) *dtPeer {
	t.Helper()
	r, w := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	p := &dtPeer{t: t, name: name, stdin: w, done: make(chan error, 1), cancel: cancel}
	go func() { p.done <- dtMain(ctx, args, r, NewEmitter(p)) }()
	p.started()
	return p
}

// childArgs names the environment variable that makes the test binary run `ARGS` (a JSON
// list) as the peer's main instead of the tests: startProc's child processes.
const childArgs = "GO_DT_PEER_CHILD_ARGS"

func TestMain(m *testing.M) {
	if raw := os.Getenv(childArgs); raw != "" {
		var args []string
		if err := json.Unmarshal([]byte(raw), &args); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		os.Args = append([]string{progName}, args...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// startProc runs `dt ARGS` as a child process (the test binary itself), so that it can be
// killed with SIGKILL.
func startProc(t *testing.T, name string, args ...string) *dtPeer {
	t.Helper()
	raw, err := json.Marshal(append([]string{"dt"}, args...))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childArgs+"="+string(raw))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &dtPeer{t: t, name: name, stdin: stdin, done: make(chan error, 1), cancel: func() {}, proc: cmd}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			_, _ = p.Write(sc.Bytes())
		}
		p.done <- cmd.Wait()
	}()
	p.started()
	return p
}

// kill ends the peer's process with SIGKILL.
func (p *dtPeer) kill() {
	p.t.Helper()
	if err := p.proc.Process.Kill(); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(waitLimit):
		p.t.Fatalf("%s: not dead within %s", p.name, waitLimit)
	}
	p.done <- nil
}

// started registers the cleanups and waits for `listening`.
func (p *dtPeer) started() {
	t := p.t
	t.Cleanup(func() {
		// Every dt event names Go's event and status.
		for _, ev := range p.all("dt", func(map[string]any) bool { return true }) {
			if ev["name"] == "" || ev["status"] == "" || ev["name"] == nil || ev["status"] == nil {
				t.Errorf("%s: dt event without a name or status: %v", p.name, ev)
			}
		}
	})
	t.Cleanup(p.stop)
	t.Cleanup(func() {
		if t.Failed() {
			p.mu.Lock()
			defer p.mu.Unlock()
			for _, ev := range p.events {
				t.Logf("%s: %v %v %v sent=%v received=%v %v %v %v", p.name, ev["event"], ev["name"], ev["status"], ev["sent"], ev["received"], ev["voucher_result"], ev["message"], ev["error"])
			}
		}
	})
	l := p.wait("listening", func(map[string]any) bool { return true })
	addrs, ok := l["addrs"].([]any)
	if !ok || len(addrs) == 0 {
		t.Fatalf("%s: listening without addrs: %v", p.name, l)
	}
	p.id = l["peer_id"].(string)
	p.addr = addrs[0].(string) + "/p2p/" + p.id
}

// stop sends quit and waits for the end of the peer.
func (p *dtPeer) stop() {
	p.send(map[string]any{"cmd": "quit"})
	_ = p.stdin.Close()
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("%s: dt: %v", p.name, err)
		}
	case <-time.After(waitLimit):
		p.t.Errorf("%s: dt did not stop within %s", p.name, waitLimit)
		if p.proc != nil {
			_ = p.proc.Process.Kill()
		}
	}
	p.cancel()
}

// send writes one command line (a closed stdin is ignored: the peer stopped).
func (p *dtPeer) send(cmd map[string]any) {
	line, err := json.Marshal(cmd)
	if err != nil {
		p.t.Fatal(err)
	}
	_, _ = p.stdin.Write(append(line, '\n'))
}

// all returns the events named name that match.
func (p *dtPeer) all(name string, match func(map[string]any) bool) []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var found []map[string]any
	for _, ev := range p.events {
		if ev["event"] == name && match(ev) {
			found = append(found, ev)
		}
	}
	return found
}

// wait returns the first event named name that matches, failing after waitLimit.
func (p *dtPeer) wait(name string, match func(map[string]any) bool) map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		if found := p.all(name, match); len(found) > 0 {
			return found[0]
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("%s: no matching %q event within %s", p.name, name, waitLimit)
	return nil
}

// command sends cmd with a fresh tag and returns its answer (any event carrying the tag).
func (p *dtPeer) command(cmd map[string]any) map[string]any {
	p.t.Helper()
	tag := fmt.Sprintf("t%d", time.Now().UnixNano())
	cmd["tag"] = tag
	p.send(cmd)
	deadline := time.Now().Add(waitLimit)
	for time.Now().Before(deadline) {
		p.mu.Lock()
		for _, ev := range p.events {
			if ev["tag"] == tag {
				p.mu.Unlock()
				return ev
			}
		}
		p.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	p.t.Fatalf("%s: no answer to %v within %s", p.name, cmd, waitLimit)
	return nil
}

// mustDo runs a command that answers command_done.
func (p *dtPeer) mustDo(cmd map[string]any) {
	p.t.Helper()
	if ans := p.command(cmd); ans["event"] != "command_done" {
		p.t.Fatalf("%s: %v answered %v", p.name, cmd, ans)
	}
}

// open sends pull or push and returns the channel.
func (p *dtPeer) open(cmd string, to *dtPeer, root string, extra map[string]any) map[string]any {
	p.t.Helper()
	c := map[string]any{"cmd": cmd, "peer": to.addr, "root": root, "voucher": map[string]any{"ID": "a", "Amount": 0}}
	for k, v := range extra {
		c[k] = v
	}
	ans := p.command(c)
	if ans["event"] != "opened" {
		p.t.Fatalf("%s: %s answered %v", p.name, cmd, ans)
	}
	return ans["channel"].(map[string]any)
}

func sameChannel(ch map[string]any) func(map[string]any) bool {
	return func(ev map[string]any) bool {
		c, ok := ev["channel"].(map[string]any)
		return ok && c["initiator"] == ch["initiator"] && c["responder"] == ch["responder"] && c["id"] == ch["id"]
	}
}

// finished waits for the channel's `finished` event.
func (p *dtPeer) finished(ch map[string]any) map[string]any {
	p.t.Helper()
	return p.wait("finished", sameChannel(ch))
}

// fixture is a CAR of ../shared/fixtures/car: its path, root, and the CARv1 a traversal of
// the root exports with its block data bytes.
type fixture struct {
	path  string
	root  string
	car   []byte
	bytes uint64
	// selector is the dag-json selector the CAR holds (empty: explore-all).
	selector string
}

func loadFixture(t *testing.T, name string) fixture {
	t.Helper()
	return loadFixtureSelected(t, name, "")
}

// loadFixtureSelected is loadFixture with the CAR and bytes of a selector (dag-json) instead
// of explore-all.
func loadFixtureSelected(t *testing.T, name, selector string) fixture {
	t.Helper()
	path := filepath.Join(fixtureDir, name)
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("fixture %s (the shared folder must be beside the repository): %v", path, err)
	}
	return readFixtureSelected(t, path, selector)
}

// genFixture writes a CAR of n raw blocks of size bytes (distinct pseudo-random data) under a
// dag-cbor root listing their links.
func genFixture(t *testing.T, n, size int) fixture {
	t.Helper()
	bs := NewBlockstore()
	ctx := context.Background()
	data := PseudoRandom(n * size)
	var links []cid.Cid
	for i := 0; i < n; i++ {
		c, err := cid.Prefix{Version: 1, Codec: cid.Raw, MhType: 0x12, MhLength: -1}.Sum(data[i*size : (i+1)*size])
		if err != nil {
			t.Fatal(err)
		}
		blk, err := blocks.NewBlockWithCid(data[i*size:(i+1)*size], c)
		if err != nil {
			t.Fatal(err)
		}
		if err := bs.Put(ctx, blk); err != nil {
			t.Fatal(err)
		}
		links = append(links, c)
	}
	root, err := qp.BuildList(basicnode.Prototype.Any, int64(n), func(la datamodel.ListAssembler) {
		for _, c := range links {
			qp.ListEntry(la, qp.Link(cidlink.Link{Cid: c}))
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	lsys := LinkSystem(bs, nil)
	lp := cidlink.LinkPrototype{Prefix: cid.Prefix{Version: 1, Codec: cid.DagCBOR, MhType: 0x12, MhLength: -1}}
	lnk, err := lsys.Store(linking.LinkContext{Ctx: ctx}, lp, root)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gen.car")
	if _, err := WriteCarFile(ctx, path, bs, lnk.(cidlink.Link).Cid, nil); err != nil {
		t.Fatal(err)
	}
	return readFixture(t, path)
}

// readFixture loads the CAR at path.
func readFixture(t *testing.T, path string) fixture {
	t.Helper()
	return readFixtureSelected(t, path, "")
}

// readFixtureSelected loads the CAR at path and exports what selector (dag-json; none is
// explore-all) selects.
func readFixtureSelected(t *testing.T, path, selector string) fixture {
	t.Helper()
	sel, err := parseSelector(json.RawMessage(selector))
	if err != nil {
		t.Fatal(err)
	}
	bs := NewBlockstore()
	roots, _, err := ReadCarFile(context.Background(), path, bs)
	if err != nil || len(roots) != 1 {
		t.Fatalf("fixture %s: roots %v, %v", path, roots, err)
	}
	cs := &countingStore{Blockstore: bs, seen: map[cid.Cid]struct{}{}}
	var buf bytes.Buffer
	if _, err := WriteCar(context.Background(), &buf, cs, roots[0], sel); err != nil {
		t.Fatal(err)
	}
	return fixture{path: path, root: roots[0].String(), car: buf.Bytes(), bytes: cs.bytes, selector: selector}
}

// exportMatches exports the fixture's root from p and compares it with the fixture.
func (p *dtPeer) exportMatches(f fixture) {
	p.t.Helper()
	out := filepath.Join(p.t.TempDir(), "out.car")
	cmd := map[string]any{"cmd": "export", "root": f.root, "out": out}
	if f.selector != "" {
		cmd["selector"] = json.RawMessage(f.selector)
	}
	ans := p.command(cmd)
	if ans["event"] != "exported" || ans["bytes"] != num(f.bytes) {
		p.t.Fatalf("%s: export answered %v, want %d bytes", p.name, ans, f.bytes)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		p.t.Fatal(err)
	}
	if !bytes.Equal(got, f.car) {
		p.t.Errorf("%s: exported CAR (%d bytes) differs from the fixture's (%d bytes)", p.name, len(got), len(f.car))
	}
}

// num is n as the events' json.Number.
func num(n uint64) json.Number { return json.Number(fmt.Sprint(n)) }

// checkTotals checks a finished event's status and byte counters.
func checkTotals(t *testing.T, who string, fin map[string]any, status string, sent, received uint64) {
	t.Helper()
	if fin["status"] != status || fin["sent"] != num(sent) || fin["received"] != num(received) {
		t.Errorf("%s finished %v, want %s with sent %d received %d", who, fin, status, sent, received)
	}
}

func TestPullAndPushFixtures(t *testing.T) {
	// The complete-DAG fixtures (the wikipedia one is partial; sample-v1's explore-all
	// traversal does not end in reasonable time: its blocks link to each other many times).
	for _, name := range []string{"dir-with-files.car", "simple-unixfs.car", "dag-pb.car", "dag-cbor-traversal.car"} {
		f := loadFixture(t, name)
		t.Run("pull/"+name, func(t *testing.T) {
			resp := startDt(t, "responder", "--car", f.path)
			init := startDt(t, "initiator")
			ch := init.open("pull", resp, f.root, nil)
			checkTotals(t, "initiator", init.finished(ch), "Completed", 0, f.bytes)
			checkTotals(t, "responder", resp.finished(ch), "Completed", f.bytes, 0)
			init.exportMatches(f)
		})
		t.Run("push/"+name, func(t *testing.T) {
			resp := startDt(t, "responder")
			init := startDt(t, "initiator", "--car", f.path)
			ch := init.open("push", resp, f.root, nil)
			checkTotals(t, "initiator", init.finished(ch), "Completed", f.bytes, 0)
			checkTotals(t, "responder", resp.finished(ch), "Completed", 0, f.bytes)
			resp.exportMatches(f)
		})
	}
}

// numField reads an event's integer member.
func numField(t *testing.T, ev map[string]any, key string) uint64 {
	t.Helper()
	n, ok := ev[key].(json.Number)
	if !ok {
		t.Fatalf("%s of %v is not a number", key, ev)
	}
	v, err := strconv.ParseUint(string(n), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// outcomes lists the Outcome of every voucher result the peer's dt events carried on ch.
func (p *dtPeer) outcomes(ch map[string]any) []string {
	var out []string
	for _, ev := range p.all("dt", sameChannel(ch)) {
		if vr, ok := ev["voucher_result"].(map[string]any); ok {
			out = append(out, fmt.Sprint(vr["Outcome"]))
		}
	}
	return out
}

func TestRefusingValidator(t *testing.T) {
	f := loadFixture(t, "dag-pb.car")
	resp := startDt(t, "responder", "--car", f.path, "--refuse")
	puller := startDt(t, "puller")
	pusher := startDt(t, "pusher", "--car", f.path)
	for _, cmd := range []string{"pull", "push"} {
		// A puller holding the DAG would never ask: go-graphsync's requester is local first.
		init := puller
		if cmd == "push" {
			init = pusher
		}
		ch := init.open(cmd, resp, f.root, nil)
		fin := init.finished(ch)
		if fin["status"] != "Failed" || fin["sent"] != num(0) || fin["received"] != num(0) {
			t.Errorf("%s: initiator finished %v, want Failed with nothing moved", cmd, fin)
		}
		if got := init.outcomes(ch); fmt.Sprint(got) != "[refused]" {
			t.Errorf("%s: initiator saw voucher results %v, want [refused]", cmd, got)
		}
	}
}

func TestPushRefusedWithAcceptPushFalse(t *testing.T) {
	f := loadFixture(t, "dag-pb.car")
	resp := startDt(t, "responder", "--accept-push=false")
	init := startDt(t, "initiator", "--car", f.path)
	ch := init.open("push", resp, f.root, nil)
	if fin := init.finished(ch); fin["status"] != "Failed" {
		t.Errorf("initiator finished %v, want Failed", fin)
	}
	if got := init.outcomes(ch); fmt.Sprint(got) != "[refused]" {
		t.Errorf("initiator saw voucher results %v, want [refused]", got)
	}
}

func TestUnregisteredVoucherIsRejected(t *testing.T) {
	f := loadFixture(t, "dag-pb.car")
	resp := startDt(t, "responder", "--car", f.path)
	init := startDt(t, "initiator")
	ch := init.open("pull", resp, f.root, map[string]any{"voucher_type": "UnknownVoucher"})
	fin := init.finished(ch)
	if fin["status"] != "Failed" || fin["received"] != num(0) {
		t.Errorf("initiator finished %v, want Failed with nothing received", fin)
	}
}

func TestPaidRetrievalWithFinalization(t *testing.T) {
	f := genFixture(t, 10, 10000)
	resp := startDt(t, "responder", "--car", f.path, "--pay-every", "25000", "--finalize")
	init := startDt(t, "initiator")
	ch := init.open("pull", resp, f.root, map[string]any{"voucher": map[string]any{"ID": "deal-7", "Amount": 0}})
	checkTotals(t, "initiator", init.finished(ch), "Completed", 0, f.bytes)
	checkTotals(t, "responder", resp.finished(ch), "Completed", f.bytes, 0)
	init.exportMatches(f)
	// Every payment request the responder made was paid once, in order, with its Owed
	// amount: BYTES at each data limit, the rest in finalization.
	outcomes := init.outcomes(ch)
	var required []uint64
	for _, ev := range resp.all("dt", sameChannel(ch)) {
		if vr, ok := ev["voucher_result"].(map[string]any); ok && vr["Outcome"] == "payment-required" {
			required = append(required, numField(t, vr, "Owed"))
		}
	}
	var paid []uint64
	for _, ev := range init.all("paid", sameChannel(ch)) {
		if ev["error"] != nil {
			t.Errorf("payment failed: %v", ev)
		}
		paid = append(paid, numField(t, ev, "amount"))
	}
	if len(required) < 2 || !slices.Equal(paid, required) {
		t.Fatalf("payment requests %v, payments %v: want at least two, each paid once in order", required, paid)
	}
	var total uint64
	for _, owed := range required {
		total += owed
	}
	for _, owed := range required[:len(required)-1] {
		if owed != 25000 {
			t.Errorf("payment requests %v: every one before finalization must be 25000", required)
		}
	}
	if total < f.bytes {
		t.Errorf("paid %d in all for %d bytes", total, f.bytes)
	}
	// The accepting result rides on graphsync and a payment request on the data-transfer
	// network: the two may arrive in either order. The final request (data-transfer network)
	// may also overtake the second copy of the last data-limit request and the answer to its
	// payment (both on graphsync), which then arrive after the settlement; no payment
	// follows it (checked above: every request was paid once).
	settled := slices.Index(outcomes, "settled")
	if !slices.Contains(outcomes, "accepted") || settled < 0 || !lateRound(outcomes[settled+1:]) {
		t.Errorf("voucher results %v: want accepted, and settled last but for a late copy of the last data-limit request and its answer", outcomes)
	}
	if len(resp.all("dt", func(ev map[string]any) bool { return ev["name"] == "BeginFinalizing" })) != 1 {
		t.Error("the responder never began finalizing")
	}
	state := resp.command(map[string]any{"cmd": "state", "channel": ch})
	if state["event"] != "state" || state["status"] != "Completed" || state["is_pull"] != true || state["base_cid"] != f.root {
		t.Errorf("responder state %v", state)
	}
}

// received is the initiator's received counter from a state command.
func (p *dtPeer) received(ch map[string]any) uint64 {
	p.t.Helper()
	st := p.command(map[string]any{"cmd": "state", "channel": ch})
	if st["event"] != "state" {
		p.t.Fatalf("%s: state answered %v", p.name, st)
	}
	return numField(p.t, st, "received")
}

func TestPauseAndResumeFromEachSide(t *testing.T) {
	f := genFixture(t, 30, 8000)
	for _, side := range []string{"initiator", "responder"} {
		t.Run(side, func(t *testing.T) {
			resp := startDt(t, "responder", "--car", f.path, "--read-delay-after", "2:40")
			init := startDt(t, "initiator")
			ch := init.open("pull", resp, f.root, nil)
			init.wait("dt", func(ev map[string]any) bool { return sameChannel(ch)(ev) && ev["name"] == "DataReceived" })
			pauser := init
			if side == "responder" {
				pauser = resp
			}
			pauser.mustDo(map[string]any{"cmd": "pause", "channel": ch})
			// What was in flight arrives; after that, nothing while paused.
			time.Sleep(300 * time.Millisecond)
			before := init.received(ch)
			time.Sleep(600 * time.Millisecond)
			after := init.received(ch)
			if after != before || after >= f.bytes {
				t.Errorf("received %d then %d of %d while paused", before, after, f.bytes)
			}
			pauser.mustDo(map[string]any{"cmd": "resume", "channel": ch})
			checkTotals(t, "initiator", init.finished(ch), "Completed", 0, f.bytes)
			checkTotals(t, "responder", resp.finished(ch), "Completed", f.bytes, 0)
			init.exportMatches(f)
		})
	}
}

func TestCancelFromEachSide(t *testing.T) {
	f := genFixture(t, 30, 8000)
	for _, side := range []string{"initiator", "responder"} {
		t.Run(side, func(t *testing.T) {
			resp := startDt(t, "responder", "--car", f.path, "--read-delay-after", "2:40")
			init := startDt(t, "initiator")
			ch := init.open("pull", resp, f.root, nil)
			init.wait("dt", func(ev map[string]any) bool { return sameChannel(ch)(ev) && ev["name"] == "DataReceived" })
			canceller := init
			if side == "responder" {
				canceller = resp
			}
			canceller.mustDo(map[string]any{"cmd": "cancel", "channel": ch})
			for _, p := range []*dtPeer{init, resp} {
				fin := p.finished(ch)
				if fin["status"] != "Cancelled" {
					t.Errorf("%s finished %v, want Cancelled", p.name, fin)
				}
			}
			if got := numField(t, init.finished(ch), "received"); got >= f.bytes {
				t.Errorf("the cancelled pull received all %d bytes", got)
			}
		})
	}
}

// quiet waits until the peer has emitted no event on ch for d.
func (p *dtPeer) quiet(ch map[string]any, d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(waitLimit)
	count, since := -1, time.Now()
	for time.Now().Before(deadline) {
		if n := len(p.all("dt", sameChannel(ch))); n != count {
			count, since = n, time.Now()
		} else if time.Since(since) >= d {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("%s: channel still busy after %s", p.name, waitLimit)
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// TestKilledPeerRestartsFromItsStore kills (SIGKILL) the initiator, then the responder, of a
// pull mid-transfer; the process started again on the same --store and port has the same
// peer id and the channel, and a restart of the channel completes the DAG.
func TestKilledPeerRestartsFromItsStore(t *testing.T) {
	f := genFixture(t, 30, 8000)
	for _, killed := range []string{"initiator", "responder"} {
		t.Run(killed, func(t *testing.T) {
			dir := t.TempDir()
			listen := "/ip4/127.0.0.1/tcp/" + freePort(t)
			respArgs := []string{"--car", f.path, "--read-delay-after", "3:50"}
			initArgs := []string{}
			if killed == "responder" {
				respArgs = append(respArgs, "--store", dir, "--listen", listen)
			} else {
				initArgs = append(initArgs, "--store", dir, "--listen", listen)
			}
			var resp, init *dtPeer
			if killed == "responder" {
				resp = startProc(t, "responder", respArgs...)
				init = startDt(t, "initiator", initArgs...)
			} else {
				resp = startDt(t, "responder", respArgs...)
				init = startProc(t, "initiator", initArgs...)
			}
			ch := init.open("pull", resp, f.root, nil)
			init.wait("dt", func(ev map[string]any) bool {
				return sameChannel(ch)(ev) && ev["name"] == "DataReceived" && numField(t, ev, "received") > 20000
			})
			victim := init
			if killed == "responder" {
				victim = resp
			}
			victim.kill()
			if killed == "initiator" {
				// go-graphsync's responder keeps the old response of the channel sending into
				// the dead connection until it notices, and it de-duplicates blocks per peer
				// across responses: a restart from the same peer id that comes earlier gets
				// DuplicateNotSent for what the old response "sent", and fails. Wait until the
				// responder has stopped working on the old response.
				resp.quiet(ch, 500*time.Millisecond)
			}
			victimArgs := initArgs
			if killed == "responder" {
				victimArgs = respArgs
			}
			again := startProc(t, killed+" again", victimArgs...)
			if again.id != victim.id {
				t.Fatalf("peer id %s after the restart, %s before", again.id, victim.id)
			}
			if killed == "responder" {
				resp = again
			} else {
				init = again
			}
			st := again.command(map[string]any{"cmd": "state", "channel": ch})
			if st["event"] != "state" || st["is_pull"] != true || st["base_cid"] != f.root {
				t.Fatalf("the restarted %s's state of the channel: %v", killed, st)
			}
			// The initiator restarts the channel (the pull's graphsync request is its own).
			init.mustDo(map[string]any{"cmd": "restart", "channel": ch})
			if fin := init.finished(ch); fin["status"] != "Completed" {
				t.Errorf("initiator finished %v, want Completed", fin)
			}
			if fin := resp.finished(ch); fin["status"] != "Completed" {
				t.Errorf("responder finished %v, want Completed", fin)
			}
			init.exportMatches(f)
		})
	}
}

// TestDisconnectRestartsAutomatically cuts the connection mid-pull; with --monitor the
// channel restarts by itself and completes.
func TestDisconnectRestartsAutomatically(t *testing.T) {
	f := genFixture(t, 30, 8000)
	resp := startDt(t, "responder", "--car", f.path, "--read-delay-after", "3:40", "--monitor")
	init := startDt(t, "initiator", "--monitor")
	ch := init.open("pull", resp, f.root, nil)
	init.wait("dt", func(ev map[string]any) bool { return sameChannel(ch)(ev) && ev["name"] == "DataReceived" })
	init.mustDo(map[string]any{"cmd": "disconnect", "peer": resp.id})
	if fin := init.finished(ch); fin["status"] != "Completed" {
		t.Errorf("initiator finished %v, want Completed", fin)
	}
	if fin := resp.finished(ch); fin["status"] != "Completed" {
		t.Errorf("responder finished %v, want Completed", fin)
	}
	init.exportMatches(f)
}

// depthOne explores the root and the blocks it links to directly.
const depthOne = `{"R":{"l":{"depth":1},":>":{"a":{">":{"@":{}}}}}}`

func TestPullAndPushSubDagSelector(t *testing.T) {
	all := loadFixture(t, "dir-with-files.car")
	f := loadFixtureSelected(t, "dir-with-files.car", depthOne)
	if f.bytes >= all.bytes {
		t.Fatalf("the selector selects %d of %d bytes: not a sub-DAG", f.bytes, all.bytes)
	}
	sel := map[string]any{"selector": json.RawMessage(depthOne)}
	t.Run("pull", func(t *testing.T) {
		resp := startDt(t, "responder", "--car", f.path)
		init := startDt(t, "initiator")
		ch := init.open("pull", resp, f.root, sel)
		checkTotals(t, "initiator", init.finished(ch), "Completed", 0, f.bytes)
		checkTotals(t, "responder", resp.finished(ch), "Completed", f.bytes, 0)
		init.exportMatches(f)
		// The rest of the DAG did not come.
		out := filepath.Join(t.TempDir(), "all.car")
		if ans := init.command(map[string]any{"cmd": "export", "root": f.root, "out": out}); ans["event"] != "command_failed" {
			t.Errorf("exporting the whole DAG from the sub-DAG answered %v, want command_failed", ans)
		}
	})
	t.Run("push", func(t *testing.T) {
		resp := startDt(t, "responder")
		init := startDt(t, "initiator", "--car", f.path)
		ch := init.open("push", resp, f.root, sel)
		checkTotals(t, "initiator", init.finished(ch), "Completed", f.bytes, 0)
		checkTotals(t, "responder", resp.finished(ch), "Completed", 0, f.bytes)
		resp.exportMatches(f)
	})
}

func TestFourParallelPulls(t *testing.T) {
	// Four different DAGs (the data is seeded with the total size), pulled at once from one
	// responder over the same connection.
	var fs []fixture
	args := []string{"--read-delay-after", "0:10"}
	for i := 0; i < 4; i++ {
		f := genFixture(t, 20, 8000+i)
		fs = append(fs, f)
		args = append(args, "--car", f.path)
	}
	resp := startDt(t, "responder", args...)
	init := startDt(t, "initiator")
	var chans []map[string]any
	for i, f := range fs {
		chans = append(chans, init.open("pull", resp, f.root, map[string]any{"voucher": map[string]any{"ID": fmt.Sprint("p", i), "Amount": 0}}))
	}
	for i, ch := range chans {
		checkTotals(t, "initiator", init.finished(ch), "Completed", 0, fs[i].bytes)
		checkTotals(t, "responder", resp.finished(ch), "Completed", fs[i].bytes, 0)
		init.exportMatches(fs[i])
	}
}

// lateRound says whether voucher results that arrived after the settlement are at most the
// overtaken tail of the last data-limit round: its request's second copy, then the answer
// to its payment.
func lateRound(after []string) bool {
	switch len(after) {
	case 0:
		return true
	case 1:
		return after[0] == "payment-required" || after[0] == "paid"
	case 2:
		return after[0] == "payment-required" && after[1] == "paid"
	}
	return false
}
