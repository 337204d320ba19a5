package main

// FileBlockstore: the block store of `cargo xtask bench` on the Go side, shared by go-peer's
// graphsync bench commands (bench.go, also built by go-peer-v013) and go-dt-v2's data-transfer
// bench commands (dtbench.go), each of which has this file as a symbolic link.
//
// One file per block, named by the CID's string form under a directory named by the string's
// next-to-last two characters (go-ds-flatfs's next-to-last/2 layout), never synced: the same
// layout and write path as the Rust bench peers' store (block-files, sharded layout). Like it,
// a put on Linux creates an unnamed file in the shard directory (O_TMPFILE), writes it, links
// it in under its name (linkat, which fails with EEXIST when the block is there already) and
// closes it (filestore_unnamed_linux.go); where the system refuses, it looks the block up,
// writes a temporary file and renames it. The store remembers the shard directories it has
// made (one removed behind its back is made again) and its process id, so neither costs a
// system call per block. go-ds-flatfs itself is not used: v0.5.1, the newest release the module
// proxy offers, does not build against the go-datastore v0.9.2 that go-graphsync v0.18.1 needs
// (query.ResultBuilder is gone).

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
)

// FileBlockstore is a block store with one file per block (see the file's comment).
type FileBlockstore struct {
	dir    string
	pid    string
	temp   atomic.Uint64
	shards sync.Map // shard directory -> struct{}: made by this store
	// noUnnamed is set once the system refused an unnamed file or its link: every later put
	// names its temporary file.
	noUnnamed atomic.Bool
}

// OpenFileBlockstore opens (creating it if needed) a file-per-block store in dir.
func OpenFileBlockstore(dir string) (*FileBlockstore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &FileBlockstore{dir: dir, pid: strconv.Itoa(os.Getpid())}, nil
}

func (s *FileBlockstore) path(c cid.Cid) string {
	key := c.String()
	shard := "__"
	if len(key) >= 3 {
		shard = key[len(key)-3 : len(key)-1]
	}
	return filepath.Join(s.dir, shard, key)
}

// DeleteBlock removes a block; a missing block is not an error.
func (s *FileBlockstore) DeleteBlock(_ context.Context, c cid.Cid) error {
	err := os.Remove(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// Has tells whether the block is stored.
func (s *FileBlockstore) Has(_ context.Context, c cid.Cid) (bool, error) {
	_, err := os.Stat(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// Get reads a block.
func (s *FileBlockstore) Get(_ context.Context, c cid.Cid) (blocks.Block, error) {
	data, err := os.ReadFile(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("block %s not found", c)
	}
	if err != nil {
		return nil, err
	}
	return blocks.NewBlockWithCid(data, c)
}

// GetSize returns a block's size.
func (s *FileBlockstore) GetSize(_ context.Context, c cid.Cid) (int, error) {
	info, err := os.Stat(s.path(c))
	if errors.Is(err, fs.ErrNotExist) {
		return -1, fmt.Errorf("block %s not found", c)
	}
	if err != nil {
		return -1, err
	}
	return int(info.Size()), nil
}

// Put writes a block unless it is already stored.
func (s *FileBlockstore) Put(_ context.Context, b blocks.Block) error {
	path := s.path(b.Cid())
	shard := filepath.Dir(path)
	if err := s.ensureShard(shard); err != nil {
		return err
	}
	if !s.noUnnamed.Load() {
		if done, err := s.putUnnamed(shard, path, b.RawData()); done {
			return err
		}
	}
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	temp := filepath.Join(shard, ".tmp-"+s.pid+"-"+strconv.FormatUint(s.temp.Add(1), 10))
	err := os.WriteFile(temp, b.RawData(), 0o644)
	if errors.Is(err, fs.ErrNotExist) {
		if err := s.remakeShard(shard); err != nil {
			return err
		}
		err = os.WriteFile(temp, b.RawData(), 0o644)
	}
	if err != nil {
		return err
	}
	return os.Rename(temp, path)
}

// remakeShard makes a shard directory again after it was removed behind the store's back.
func (s *FileBlockstore) remakeShard(shard string) error {
	s.shards.Delete(shard)
	return s.ensureShard(shard)
}

// ensureShard makes a shard directory unless this store has made it already.
func (s *FileBlockstore) ensureShard(shard string) error {
	if _, made := s.shards.Load(shard); made {
		return nil
	}
	if err := os.MkdirAll(shard, 0o755); err != nil {
		return err
	}
	s.shards.Store(shard, struct{}{})
	return nil
}

// PutMany writes blocks one by one.
func (s *FileBlockstore) PutMany(ctx context.Context, bs []blocks.Block) error {
	for _, b := range bs {
		if err := s.Put(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// AllKeysChan lists every stored block.
func (s *FileBlockstore) AllKeysChan(ctx context.Context) (<-chan cid.Cid, error) {
	out := make(chan cid.Cid)
	go func() {
		defer close(out)
		_ = filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			c, err := cid.Decode(d.Name())
			if err != nil {
				return nil
			}
			select {
			case out <- c:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return out, nil
}

// HashOnRead is accepted and ignored (the go-ipfs-blockstore interface of the v0.13 build asks
// for it); blocks are checked when they are loaded from a CAR or arrive over graphsync.
func (s *FileBlockstore) HashOnRead(bool) {}
