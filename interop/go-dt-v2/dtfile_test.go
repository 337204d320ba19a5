package main

// The --file test needs the UnixFS importer, which only this build has (go-dt-v115 shares
// dt_test.go but not this file).

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
)

func TestPullOfAnImportedFile(t *testing.T) {
	data := PseudoRandom(1<<20 + 12345)
	path := filepath.Join(t.TempDir(), "file.bin")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	// What `--file` must load: kubo's defaults (CIDv1, raw leaves, 256 KiB chunks).
	bs := NewBlockstore()
	root, _, err := ImportFile(bytes.NewReader(data), bs, KuboOptions(1, nil))
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Blockstore: bs, seen: map[cid.Cid]struct{}{}}
	var car bytes.Buffer
	if _, err := WriteCar(context.Background(), &car, cs, root, nil); err != nil {
		t.Fatal(err)
	}
	f := fixture{path: path, root: root.String(), car: car.Bytes(), bytes: cs.bytes}

	resp := startDt(t, "responder", "--file", path)
	loaded := resp.wait("loaded", func(map[string]any) bool { return true })
	if loaded["root"] != f.root || loaded["file"] != path || loaded["blocks"] != num(6) {
		t.Fatalf("loaded %v, want root %s from %s in 6 blocks", loaded, f.root, path)
	}
	init := startDt(t, "initiator")
	ch := init.open("pull", resp, f.root, nil)
	checkTotals(t, "initiator", init.finished(ch), "Completed", 0, f.bytes)
	checkTotals(t, "responder", resp.finished(ch), "Completed", f.bytes, 0)
	init.exportMatches(f)
}
