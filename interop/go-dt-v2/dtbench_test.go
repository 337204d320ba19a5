package main

import (
	"context"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startBench runs an extra command (bench-serve, bench-pull) in this process; its events are
// collected like a dt peer's and its result arrives on done.
func startBench(t *testing.T, name, command string, args ...string) *dtPeer {
	t.Helper()
	run, ok := extraCommands[command]
	if !ok {
		t.Fatalf("%s is not registered", command)
	}
	r, w := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	p := &dtPeer{t: t, name: name, stdin: w, done: make(chan error, 1), cancel: cancel}
	go func() { p.done <- run(ctx, args, r, NewEmitter(p)) }()
	t.Cleanup(func() {
		_ = w.Close()
		cancel()
	})
	return p
}

// countBlockFiles counts the block files under dir (names not starting with a dot).
func countBlockFiles(t *testing.T, dir string) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestBenchPullBetweenFileStores: bench-serve on a FileBlockstore holding a fixture, a
// bench-pull into an empty one: both sides Completed with the DAG's bytes, every block in the
// requester's store, and nothing printed per event.
func TestBenchPullBetweenFileStores(t *testing.T) {
	f := loadFixture(t, "dir-with-files.car")
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	bs, err := OpenFileBlockstore(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ReadCarFile(context.Background(), f.path, bs); err != nil {
		t.Fatal(err)
	}
	server := startBench(t, "server", "bench-serve", "--blocks", src)
	listening := server.wait("listening", func(map[string]any) bool { return true })
	addrs, _ := listening["addrs"].([]any)
	if len(addrs) == 0 {
		t.Fatalf("listening without addrs: %v", listening)
	}
	addr := addrs[0].(string) + "/p2p/" + listening["peer_id"].(string)

	client := startBench(t, "client", "bench-pull", "--blocks", dst, "--peer", addr, "--root", f.root, "--timeout", "20s")
	select {
	case err := <-client.done:
		if err != nil {
			t.Fatalf("bench-pull: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("bench-pull did not end within %s", waitLimit)
	}
	client.wait("connected", func(map[string]any) bool { return true })
	done := client.wait("done", func(map[string]any) bool { return true })
	checkTotals(t, "requester", done, "Completed", 0, f.bytes)
	fin := server.wait("finished", func(map[string]any) bool { return true })
	checkTotals(t, "responder", fin, "Completed", f.bytes, 0)
	if got, want := countBlockFiles(t, dst), countBlockFiles(t, src); got != want {
		t.Errorf("the requester's store holds %d blocks, the responder's %d", got, want)
	}
	for _, p := range []*dtPeer{server, client} {
		if dt := p.all("dt", func(map[string]any) bool { return true }); len(dt) > 0 {
			t.Errorf("%s printed %d dt events", p.name, len(dt))
		}
	}
	_ = server.stdin.Close()
	select {
	case err := <-server.done:
		if err != nil {
			t.Fatalf("bench-serve: %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("bench-serve did not stop within %s of its stdin's end", waitLimit)
	}
	server.wait("stopped", func(map[string]any) bool { return true })
}

// TestBenchPullOfAMissingRootFails: a root the responder does not hold ends the pull with an
// error, not a hang.
func TestBenchPullOfAMissingRootFails(t *testing.T) {
	dir := t.TempDir()
	server := startBench(t, "server", "bench-serve", "--blocks", filepath.Join(dir, "src"))
	listening := server.wait("listening", func(map[string]any) bool { return true })
	addr := listening["addrs"].([]any)[0].(string) + "/p2p/" + listening["peer_id"].(string)
	f := loadFixture(t, "simple-unixfs.car")
	client := startBench(t, "client", "bench-pull", "--blocks", filepath.Join(dir, "dst"), "--peer", addr, "--root", f.root, "--timeout", "15s")
	select {
	case err := <-client.done:
		if err == nil {
			t.Fatal("a pull of a root the responder lacks succeeded")
		}
		t.Logf("bench-pull: %v", err)
	case <-time.After(waitLimit):
		t.Fatalf("bench-pull did not end within %s", waitLimit)
	}
}
