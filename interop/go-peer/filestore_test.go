package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/multiformats/go-multihash"
)

// twoBlocksInOneShard returns two raw blocks whose files share a shard directory.
func twoBlocksInOneShard(t *testing.T, s *FileBlockstore) (blocks.Block, blocks.Block) {
	t.Helper()
	seen := map[string]blocks.Block{}
	for i := uint32(0); ; i++ {
		data := binary.BigEndian.AppendUint32(nil, i)
		hash, err := multihash.Sum(data, multihash.SHA2_256, -1)
		if err != nil {
			t.Fatal(err)
		}
		b, err := blocks.NewBlockWithCid(data, cid.NewCidV1(cid.Raw, hash))
		if err != nil {
			t.Fatal(err)
		}
		shard := filepath.Dir(s.path(b.Cid()))
		if first, ok := seen[shard]; ok {
			return first, b
		}
		seen[shard] = b
	}
}

// TestPutRemakesARemovedShard: the store remembers the shard directories it made, and a
// shard removed behind its back is made again by the next put into it.
func TestPutRemakesARemovedShard(t *testing.T) {
	ctx := context.Background()
	s, err := OpenFileBlockstore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	first, second := twoBlocksInOneShard(t, s)
	if err := s.Put(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Dir(s.path(first.Cid()))); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, second); err != nil {
		t.Fatalf("a put into a removed shard: %v", err)
	}
	got, err := s.Get(ctx, second.Cid())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.RawData(), second.RawData()) {
		t.Errorf("read back %x, stored %x", got.RawData(), second.RawData())
	}
	if has, _ := s.Has(ctx, first.Cid()); has {
		t.Error("the removed block is still there")
	}
}

// putThreeTimes stores first, second and first again (over a file changed behind the store's
// back, which must stay), then checks that the shard holds exactly the two block files.
func putThreeTimes(t *testing.T, s *FileBlockstore) {
	t.Helper()
	ctx := context.Background()
	first, second := twoBlocksInOneShard(t, s)
	for _, b := range []blocks.Block{first, second} {
		if err := s.Put(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(s.path(first.Cid()), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, first); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(s.path(first.Cid())); string(got) != "kept" {
		t.Errorf("a stored block was written again: %q", got)
	}
	if got, err := s.Get(ctx, second.Cid()); err != nil || !bytes.Equal(got.RawData(), second.RawData()) {
		t.Errorf("read back %v, %v", got, err)
	}
	entries, err := os.ReadDir(filepath.Dir(s.path(first.Cid())))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("the shard holds %d entries, not the 2 block files", len(entries))
	}
}

// TestPutOnTmpfsLinksInUnnamedFiles: on Linux's tmpfs a put links in an unnamed file and
// never falls back to named temporary files.
func TestPutOnTmpfsLinksInUnnamedFiles(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("unnamed files are Linux's")
	}
	dir, err := os.MkdirTemp("/dev/shm", "filestore-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := OpenFileBlockstore(dir)
	if err != nil {
		t.Fatal(err)
	}
	putThreeTimes(t, s)
	if s.noUnnamed.Load() {
		t.Error("tmpfs refused unnamed files")
	}
	if s.temp.Load() != 0 {
		t.Errorf("%d named temporary files", s.temp.Load())
	}
}

// TestPutWithNamedTemporaryFiles: where the system refuses unnamed files, puts keep every
// guarantee with named temporary files, renamed away.
func TestPutWithNamedTemporaryFiles(t *testing.T) {
	s, err := OpenFileBlockstore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.noUnnamed.Store(true)
	putThreeTimes(t, s)
	if s.temp.Load() != 2 {
		t.Errorf("%d named temporary files, not 2 (the third put found its block)", s.temp.Load())
	}
}
