// Command go-peer is the Go reference peer for the interop tests: go-graphsync v0.18.1 on
// go-libp2p (TCP, noise, yamux) and boxo's UnixFS importer, driven by flags and by JSON lines
// on stdin and stdout. README.md documents the protocol.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-peer import|serve|request|genfile|bench-load|bench-serve|bench-request [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := NewEmitter(os.Stdout)
	var err error
	switch os.Args[1] {
	case "import":
		err = importMain(ctx, os.Args[2:], out)
	case "genfile":
		err = genfileMain(os.Args[2:], out)
	case "serve":
		err = serveMain(ctx, os.Args[2:], os.Stdin, out)
	case "request":
		err = requestMain(ctx, os.Args[2:], os.Stdin, out)
	case "bench-load":
		err = benchLoadMain(ctx, os.Args[2:], out)
	case "bench-serve":
		err = benchServeMain(ctx, os.Args[2:], os.Stdin, out)
	case "bench-request":
		err = benchRequestMain(ctx, os.Args[2:], out)
	default:
		err = fmt.Errorf("unknown command %q (want import, serve, request, genfile, bench-load, bench-serve or bench-request)", os.Args[1])
	}
	if err != nil {
		out.Emit("fatal", Fields{"error": err.Error()})
		fmt.Fprintln(os.Stderr, "go-peer:", err)
		os.Exit(1)
	}
}

// Fields are the members of one JSON line besides "event".
type Fields map[string]any

// Emitter writes one JSON object per line; it is safe for concurrent use.
type Emitter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewEmitter returns an Emitter that writes to w.
func NewEmitter(w io.Writer) *Emitter { return &Emitter{w: w} }

// Emit writes {"event": event, ...fields} as one line. An empty event writes fields alone
// (the import command's result line).
func (e *Emitter) Emit(event string, fields Fields) {
	obj := make(map[string]any, len(fields)+1)
	for k, v := range fields {
		obj[k] = v
	}
	if event != "" {
		obj["event"] = event
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(obj); err != nil {
		buf.Reset()
		_ = enc.Encode(map[string]string{"event": "error", "error": "encode event: " + err.Error()})
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	// Encode ends the line with '\n'; one Write per line keeps lines whole.
	_, _ = e.w.Write(buf.Bytes())
}

// Command is one JSON line read from stdin.
type Command struct {
	Cmd        string                     `json:"cmd"`
	Request    string                     `json:"request"`
	Extensions map[string]json.RawMessage `json:"extensions"`
}

// readCommands decodes JSON lines from r and calls handle for each until r ends, handle
// returns false, or ctx is done. A malformed line is reported and skipped.
func readCommands(ctx context.Context, r io.Reader, out *Emitter, handle func(Command) bool) {
	dec := json.NewDecoder(r)
	for ctx.Err() == nil {
		var c Command
		if err := dec.Decode(&c); err != nil {
			if errors.Is(err, io.EOF) {
				return
			}
			out.Emit("error", Fields{"error": "bad command: " + err.Error()})
			// The decoder cannot resynchronise after a syntax error.
			return
		}
		if !handle(c) {
			return
		}
	}
}

// multiFlag collects a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// parseFlags parses args with fs and reports the remaining positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	// Allow flags after positional arguments: "import FILE --car OUT".
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}
