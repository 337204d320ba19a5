// Command go-dt-v2 is the Go data-transfer peer of the interop tests: go-data-transfer v2 on
// go-graphsync and go-libp2p (TCP, noise, yamux), driven by flags and by JSON lines on stdin
// and stdout as ../dt-protocol.md describes. The go-dt-v115 module builds the same driver on
// go-data-transfer v1.15 (this file and dtcommon.go are shared by symbolic link).
package main

import (
	"bytes"
	"context"
	"encoding/json"
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
		fmt.Fprintln(os.Stderr, "usage: "+progName+" dt|import|genfile [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := NewEmitter(os.Stdout)
	var err error
	switch os.Args[1] {
	case "dt":
		err = dtMain(ctx, os.Args[2:], os.Stdin, out)
	case "import":
		err = importMain(ctx, os.Args[2:], out)
	case "genfile":
		err = genfileMain(os.Args[2:], out)
	default:
		if run, ok := extraCommands[os.Args[1]]; ok {
			err = run(ctx, os.Args[2:], os.Stdin, out)
		} else {
			err = fmt.Errorf("unknown command %q (want dt, import or genfile)", os.Args[1])
		}
	}
	if err != nil {
		out.Emit("fatal", Fields{"error": err.Error()})
		fmt.Fprintln(os.Stderr, progName+":", err)
		os.Exit(1)
	}
}

// extraCommands are the commands only one module's build has, registered by that module's own
// files in init (go-dt-v2's dtbench.go: bench-serve, bench-pull).
var extraCommands = map[string]func(ctx context.Context, args []string, stdin io.Reader, out *Emitter) error{}

// Fields are the members of one JSON line besides "event".
type Fields map[string]any

// Emitter writes one JSON object per line; it is safe for concurrent use.
type Emitter struct {
	mu sync.Mutex
	w  io.Writer
}

// NewEmitter returns an Emitter that writes to w; with a nil w it drops every line (the bench
// commands' nodes, which print nothing per event).
func NewEmitter(w io.Writer) *Emitter { return &Emitter{w: w} }

// Emit writes {"event": event, ...fields} as one line. An empty event writes fields alone
// (the import command's result line).
func (e *Emitter) Emit(event string, fields Fields) {
	if e.w == nil {
		return
	}
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
