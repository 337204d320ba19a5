package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	format "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
)

// kubo's `ipfs add` defaults: the size-262144 chunker and the balanced layout with at most
// 174 links per node (helpers.DefaultLinksPerBlock).
const (
	chunkSize = 262144
	maxLinks  = 174
)

// ImportOptions mirror the kubo `ipfs add` flags that change CIDs.
type ImportOptions struct {
	// CidVersion is 0 or 1.
	CidVersion int
	// RawLeaves stores leaves as raw blocks instead of dag-pb UnixFS File nodes.
	RawLeaves bool
}

// KuboOptions returns kubo's options for `ipfs add --cid-version=N`: version 1 implies raw
// leaves unless rawLeaves is given explicitly, version 0 does not.
func KuboOptions(cidVersion int, rawLeaves *bool) ImportOptions {
	o := ImportOptions{CidVersion: cidVersion, RawLeaves: cidVersion == 1}
	if rawLeaves != nil {
		o.RawLeaves = *rawLeaves
	}
	return o
}

// NewBlockstore returns an empty in-memory blockstore.
func NewBlockstore() blockstore.Blockstore {
	return blockstore.NewBlockstore(dssync.MutexWrap(ds.NewMapDatastore()))
}

// ImportFile imports r into bs like kubo's `ipfs add` and returns the root CID and the number
// of blocks written (repeats of identical blocks included).
func ImportFile(r io.Reader, bs blockstore.Blockstore, o ImportOptions) (cid.Cid, int64, error) {
	if o.CidVersion != 0 && o.CidVersion != 1 {
		return cid.Undef, 0, fmt.Errorf("cid version %d is not 0 or 1", o.CidVersion)
	}
	dag := &countingDAG{DAGService: merkledag.NewDAGService(blockservice.New(bs, nil))}
	params := helpers.DagBuilderParams{
		Dagserv:   dag,
		RawLeaves: o.RawLeaves,
		Maxlinks:  maxLinks,
	}
	if o.CidVersion == 1 {
		params.CidBuilder = cid.Prefix{
			Version:  1,
			Codec:    cid.DagProtobuf,
			MhType:   multihash.SHA2_256,
			MhLength: -1,
		}
	}
	db, err := params.New(chunker.NewSizeSplitter(r, chunkSize))
	if err != nil {
		return cid.Undef, 0, err
	}
	root, err := balanced.Layout(db)
	if err != nil {
		return cid.Undef, 0, err
	}
	return root.Cid(), dag.added.Load(), nil
}

// ImportPath imports the file at path; see ImportFile.
func ImportPath(path string, bs blockstore.Blockstore, o ImportOptions) (cid.Cid, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return cid.Undef, 0, err
	}
	defer f.Close()
	return ImportFile(f, bs, o)
}

// countingDAG counts the nodes the importer adds.
type countingDAG struct {
	format.DAGService
	added atomic.Int64
}

func (c *countingDAG) Add(ctx context.Context, n format.Node) error {
	c.added.Add(1)
	return c.DAGService.Add(ctx, n)
}

func (c *countingDAG) AddMany(ctx context.Context, ns []format.Node) error {
	c.added.Add(int64(len(ns)))
	return c.DAGService.AddMany(ctx, ns)
}

// importMain runs `go-peer import --cid-version 0|1 [--raw-leaves] [--car OUT] FILE`.
func importMain(ctx context.Context, args []string, out *Emitter) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	cidVersion := fs.Int("cid-version", 0, "CID version, 0 or 1 (1 implies --raw-leaves)")
	rawLeaves := fs.Bool("raw-leaves", false, "store leaves as raw blocks")
	carOut := fs.String("car", "", "write the DAG to this CARv1 file")
	files, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return fmt.Errorf("import takes exactly one FILE, got %d", len(files))
	}
	var explicitRaw *bool
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "raw-leaves" {
			explicitRaw = rawLeaves
		}
	})
	bs := NewBlockstore()
	root, blocks, err := ImportPath(files[0], bs, KuboOptions(*cidVersion, explicitRaw))
	if err != nil {
		return err
	}
	if *carOut != "" {
		if _, err := WriteCarFile(ctx, *carOut, bs, root, nil); err != nil {
			return err
		}
	}
	out.Emit("", Fields{"root": root.String(), "blocks": blocks})
	return nil
}
