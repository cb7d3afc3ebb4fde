//go:build race

package caddymfa

// raceEnabled: the race detector is on, and sync.Pool drops entries at
// random, so allocation counts mean nothing.
const raceEnabled = true
