package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
)

// PseudoRandom returns size bytes of xorshift64* output seeded with size (1 if size is 0, since
// xorshift never leaves the zero state): byte i is byte i%8, little-endian, of output i/8. The
// Rust reference-CID test regenerates the same bytes.
func PseudoRandom(size int) []byte {
	state := uint64(size)
	if state == 0 {
		state = 1
	}
	out := make([]byte, 0, size+8)
	for len(out) < size {
		state ^= state >> 12
		state ^= state << 25
		state ^= state >> 27
		v := state * 0x2545F4914F6CDD1D
		for i := 0; i < 8; i++ {
			out = append(out, byte(v>>(8*i)))
		}
	}
	return out[:size]
}

// genfileMain runs `go-peer genfile SIZE OUT`.
func genfileMain(args []string, out *Emitter) error {
	fs := flag.NewFlagSet("genfile", flag.ContinueOnError)
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 2 {
		return fmt.Errorf("genfile takes SIZE and OUT, got %q", rest)
	}
	size, err := strconv.Atoi(rest[0])
	if err != nil || size < 0 {
		return fmt.Errorf("size %q is not a non-negative integer", rest[0])
	}
	f, err := os.Create(rest[1])
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	_, err = w.Write(PseudoRandom(size))
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	out.Emit("", Fields{"file": rest[1], "size": size})
	return nil
}
