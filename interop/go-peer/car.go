package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	dagpb "github.com/ipld/go-codec-dagpb"
	"github.com/ipld/go-ipld-prime/codec/dagcbor"
	_ "github.com/ipld/go-ipld-prime/codec/dagjson" // dag-json blocks in DAGs we serve
	_ "github.com/ipld/go-ipld-prime/codec/raw"     // raw leaves
	"github.com/ipld/go-ipld-prime/datamodel"
	"github.com/ipld/go-ipld-prime/fluent/qp"
	"github.com/ipld/go-ipld-prime/linking"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/ipld/go-ipld-prime/node/basicnode"
	"github.com/ipld/go-ipld-prime/traversal"
	"github.com/ipld/go-ipld-prime/traversal/selector"
	selectorparse "github.com/ipld/go-ipld-prime/traversal/selector/parse"
	"github.com/multiformats/go-varint"
)

// maxSection bounds one CAR section (header or block) when reading.
const maxSection = 8 << 20

// ExploreAll is the selector used when none is given: every node, following every link.
var ExploreAll = selectorparse.CommonSelector_ExploreAllRecursively

// PrototypeChooser picks dag-pb's prototype for dag-pb links and basicnode otherwise.
var PrototypeChooser = dagpb.AddSupportToChooser(func(datamodel.Link, linking.LinkContext) (datamodel.NodePrototype, error) {
	return basicnode.Prototype.Any, nil
})

// LinkSystem reads from and writes to bs. onStore, if set, sees every block written, in order.
func LinkSystem(bs Blockstore, onStore func(blocks.Block)) linking.LinkSystem {
	lsys := cidlink.DefaultLinkSystem()
	lsys.TrustedStorage = true
	lsys.StorageReadOpener = func(lctx linking.LinkContext, lnk datamodel.Link) (io.Reader, error) {
		cl, ok := lnk.(cidlink.Link)
		if !ok {
			return nil, fmt.Errorf("unsupported link type %T", lnk)
		}
		blk, err := bs.Get(lctx.Ctx, cl.Cid)
		if err != nil {
			return nil, err
		}
		return bytes.NewReader(blk.RawData()), nil
	}
	lsys.StorageWriteOpener = func(lctx linking.LinkContext) (io.Writer, linking.BlockWriteCommitter, error) {
		var buf bytes.Buffer
		return &buf, func(lnk datamodel.Link) error {
			cl, ok := lnk.(cidlink.Link)
			if !ok {
				return fmt.Errorf("unsupported link type %T", lnk)
			}
			blk, err := blocks.NewBlockWithCid(buf.Bytes(), cl.Cid)
			if err != nil {
				return err
			}
			if err := bs.Put(lctx.Ctx, blk); err != nil {
				return err
			}
			if onStore != nil {
				onStore(blk)
			}
			return nil
		}, nil
	}
	return lsys
}

// CarWriter writes a CARv1 stream with one root, each block once.
type CarWriter struct {
	w    io.Writer
	seen map[cid.Cid]struct{}
}

// NewCarWriter writes the CARv1 header for root to w.
func NewCarWriter(w io.Writer, root cid.Cid) (*CarWriter, error) {
	hdr, err := qp.BuildMap(basicnode.Prototype.Any, 2, func(ma datamodel.MapAssembler) {
		qp.MapEntry(ma, "roots", qp.List(1, func(la datamodel.ListAssembler) {
			qp.ListEntry(la, qp.Link(cidlink.Link{Cid: root}))
		}))
		qp.MapEntry(ma, "version", qp.Int(1))
	})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := dagcbor.Encode(hdr, &buf); err != nil {
		return nil, err
	}
	cw := &CarWriter{w: w, seen: map[cid.Cid]struct{}{}}
	return cw, cw.section(buf.Bytes())
}

// Put writes blk unless a block with its CID was written before.
func (cw *CarWriter) Put(blk blocks.Block) error {
	if _, dup := cw.seen[blk.Cid()]; dup {
		return nil
	}
	cw.seen[blk.Cid()] = struct{}{}
	return cw.section(blk.Cid().Bytes(), blk.RawData())
}

// Count is the number of distinct blocks written.
func (cw *CarWriter) Count() int { return len(cw.seen) }

func (cw *CarWriter) section(parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	if _, err := cw.w.Write(varint.ToUvarint(uint64(n))); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := cw.w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// WriteCar writes the blocks that a traversal of sel (ExploreAll if nil) from root loads, in
// the order it loads them, each once: the layout of go-car's selective CARv1 export.
func WriteCar(ctx context.Context, w io.Writer, bs Blockstore, root cid.Cid, sel datamodel.Node) (int, error) {
	if sel == nil {
		sel = ExploreAll
	}
	compiled, err := selector.CompileSelector(sel)
	if err != nil {
		return 0, fmt.Errorf("compile selector: %w", err)
	}
	cw, err := NewCarWriter(w, root)
	if err != nil {
		return 0, err
	}
	lsys := LinkSystem(bs, nil)
	read := lsys.StorageReadOpener
	lsys.StorageReadOpener = func(lctx linking.LinkContext, lnk datamodel.Link) (io.Reader, error) {
		r, err := read(lctx, lnk)
		if err != nil {
			return nil, err
		}
		data, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		blk, err := blocks.NewBlockWithCid(data, lnk.(cidlink.Link).Cid)
		if err != nil {
			return nil, err
		}
		if err := cw.Put(blk); err != nil {
			return nil, err
		}
		return bytes.NewReader(data), nil
	}
	rootLink := cidlink.Link{Cid: root}
	lctx := linking.LinkContext{Ctx: ctx}
	proto, err := PrototypeChooser(rootLink, lctx)
	if err != nil {
		return 0, err
	}
	node, err := lsys.Load(lctx, rootLink, proto)
	if err != nil {
		return 0, fmt.Errorf("load root %s: %w", root, err)
	}
	progress := traversal.Progress{Cfg: &traversal.Config{
		Ctx:                            ctx,
		LinkSystem:                     lsys,
		LinkTargetNodePrototypeChooser: PrototypeChooser,
	}}
	err = progress.WalkAdv(node, compiled, func(traversal.Progress, datamodel.Node, traversal.VisitReason) error { return nil })
	if err != nil {
		return 0, fmt.Errorf("traverse %s: %w", root, err)
	}
	return cw.Count(), nil
}

// WriteCarFile is WriteCar into a new file at path.
func WriteCarFile(ctx context.Context, path string, bs Blockstore, root cid.Cid, sel datamodel.Node) (int, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, err
	}
	bw := bufio.NewWriter(f)
	n, err := WriteCar(ctx, bw, bs, root, sel)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return n, err
}

// ReadCar verifies every block of the CARv1 stream r against its CID, puts it into bs, and
// returns the header's roots and the number of blocks read.
func ReadCar(ctx context.Context, r io.Reader, bs Blockstore) ([]cid.Cid, int, error) {
	return ReadCarFirst(ctx, r, bs, -1)
}

// ReadCarFirst is ReadCar that stops after the first limit blocks (all of them if limit < 0).
func ReadCarFirst(ctx context.Context, r io.Reader, bs Blockstore, limit int) ([]cid.Cid, int, error) {
	br := bufio.NewReader(r)
	hdrBytes, err := readSection(br)
	if err != nil {
		return nil, 0, fmt.Errorf("car header: %w", err)
	}
	nb := basicnode.Prototype.Any.NewBuilder()
	if err := dagcbor.Decode(nb, bytes.NewReader(hdrBytes)); err != nil {
		return nil, 0, fmt.Errorf("car header: %w", err)
	}
	hdr := nb.Build()
	if v, err := hdr.LookupByString("version"); err != nil {
		return nil, 0, fmt.Errorf("car header has no version: %w", err)
	} else if n, err := v.AsInt(); err != nil || n != 1 {
		return nil, 0, fmt.Errorf("car header: version is not 1")
	}
	rootsNode, err := hdr.LookupByString("roots")
	if err != nil {
		return nil, 0, fmt.Errorf("car header has no roots: %w", err)
	}
	var roots []cid.Cid
	it := rootsNode.ListIterator()
	for it != nil && !it.Done() {
		_, v, err := it.Next()
		if err != nil {
			return nil, 0, err
		}
		lnk, err := v.AsLink()
		if err != nil {
			return nil, 0, fmt.Errorf("car header root: %w", err)
		}
		roots = append(roots, lnk.(cidlink.Link).Cid)
	}
	count := 0
	for limit < 0 || count < limit {
		sec, err := readSection(br)
		if errors.Is(err, io.EOF) {
			return roots, count, nil
		}
		if err != nil {
			return nil, 0, fmt.Errorf("car block %d: %w", count, err)
		}
		n, c, err := cid.CidFromBytes(sec)
		if err != nil {
			return nil, 0, fmt.Errorf("car block %d: %w", count, err)
		}
		want, err := c.Prefix().Sum(sec[n:])
		if err != nil {
			return nil, 0, fmt.Errorf("car block %d: %w", count, err)
		}
		if !want.Equals(c) {
			return nil, 0, fmt.Errorf("car block %d: data does not hash to %s", count, c)
		}
		blk, err := blocks.NewBlockWithCid(sec[n:], c)
		if err != nil {
			return nil, 0, err
		}
		if err := bs.Put(ctx, blk); err != nil {
			return nil, 0, err
		}
		count++
	}
	return roots, count, nil
}

// ReadCarFile is ReadCar from the file at path.
func ReadCarFile(ctx context.Context, path string, bs Blockstore) ([]cid.Cid, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return ReadCar(ctx, f, bs)
}

// ReadCarFileFirst is ReadCarFirst from the file at path.
func ReadCarFileFirst(ctx context.Context, path string, bs Blockstore, limit int) ([]cid.Cid, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return ReadCarFirst(ctx, f, bs, limit)
}

// readSection reads one varint-prefixed section; io.EOF only at a clean end.
func readSection(br *bufio.Reader) ([]byte, error) {
	n, err := varint.ReadUvarint(br)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, io.EOF
		}
		return nil, err
	}
	if n == 0 || n > maxSection {
		return nil, fmt.Errorf("section length %d out of range", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(br, buf); err != nil {
		return nil, fmt.Errorf("truncated section: %w", err)
	}
	return buf, nil
}
