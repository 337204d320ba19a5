package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
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
