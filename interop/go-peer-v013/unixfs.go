package main

import (
	"context"
	"errors"
	"io"

	"github.com/ipfs/go-cid"
)

// errNoImporter: this build has no UnixFS importer (boxo needs a newer go-ipld-prime than
// go-graphsync v0.13.x builds with); the go-peer build imports files.
var errNoImporter = errors.New("the v0.13 build has no UnixFS importer: use interop/go-peer")

// ImportOptions mirrors go-peer's importer settings; only the CID version is kept.
type ImportOptions struct {
	// CidVersion is 0 or 1.
	CidVersion int
}

// KuboOptions returns the settings for a CID version.
func KuboOptions(cidVersion int, _ *bool) ImportOptions {
	return ImportOptions{CidVersion: cidVersion}
}

// ImportPath always fails in this build.
func ImportPath(string, Blockstore, ImportOptions) (c cid.Cid, n int64, err error) {
	return c, 0, errNoImporter
}

// ImportFile always fails in this build.
func ImportFile(io.Reader, Blockstore, ImportOptions) (c cid.Cid, n int64, err error) {
	return c, 0, errNoImporter
}

// importMain always fails in this build.
func importMain(context.Context, []string, *Emitter) error {
	return errNoImporter
}
