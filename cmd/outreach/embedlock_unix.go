//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// locksHeld: lockFile keeps a second process off the store.
const locksHeld = true

// lockFile takes an exclusive lock on path, created if need be, without
// waiting; the lock goes with the process (a kill -9 included).
func lockFile(path string) (release func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}
