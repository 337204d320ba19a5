//go:build !linux

package main

// putUnnamed: unnamed files are Linux's; elsewhere every put names its temporary file.
func (s *FileBlockstore) putUnnamed(shard, path string, data []byte) (done bool, err error) {
	return false, nil
}
