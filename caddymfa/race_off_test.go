//go:build !race

package caddymfa

const raceEnabled = false
