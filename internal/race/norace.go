//go:build !race

// Package race reports whether the program was built with the race detector, for the
// tests that count allocations: under it sync.Pool drops what it is given at random.
package race

// Enabled is true when built with -race.
const Enabled = false
