//go:build linux

package main

import (
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// putUnnamed writes data into an unnamed file in shard (O_TMPFILE) and links it in as path,
// as the Rust store's write_unnamed does (see filestore.go): the block appears only whole, and
// one already stored makes the link fail with EEXIST, its unnamed copy going with the
// descriptor. done is false when the system refuses (a file system without unnamed files, or an
// older kernel that allows the link only with CAP_DAC_READ_SEARCH); the store then names its
// temporary files from this put on.
func (s *FileBlockstore) putUnnamed(shard, path string, data []byte) (done bool, err error) {
	create := func() (int, error) {
		return unix.Open(shard, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	}
	fd, err := create()
	if err == unix.ENOENT {
		if err := s.remakeShard(shard); err != nil {
			return true, err
		}
		fd, err = create()
	}
	switch err {
	case nil:
	case unix.EOPNOTSUPP, unix.EISDIR, unix.EINVAL:
		s.noUnnamed.Store(true)
		return false, nil
	default:
		return true, &fs.PathError{Op: "create an unnamed file in", Path: shard, Err: err}
	}
	defer unix.Close(fd)
	for rest := data; len(rest) > 0; {
		n, err := unix.Write(fd, rest)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return true, &fs.PathError{Op: "write", Path: path, Err: err}
		}
		rest = rest[n:]
	}
	switch err := unix.Linkat(fd, "", unix.AT_FDCWD, path, unix.AT_EMPTY_PATH); err {
	case nil, unix.EEXIST:
		return true, nil
	case unix.ENOENT, unix.EPERM:
		s.noUnnamed.Store(true)
		return false, nil
	default:
		return true, &os.LinkError{Op: "link", Old: shard, New: path, Err: err}
	}
}
