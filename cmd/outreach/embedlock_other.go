//go:build !unix

package main

// lockFile is a no-op where flock is not available.
func lockFile(string) (func(), error) { return func() {}, nil }

// locksHeld: lockFile keeps no second process off the store here.
const locksHeld = false
