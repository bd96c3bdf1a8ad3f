//go:build !linux

package config

import (
	"runtime"
	"strings"
)

// Engines are the allowed values of server.engine on this system. The
// eventloop and uring engines run on Linux only: the BSDs and macOS have
// the other three, and auto (goroutine there).
var Engines = []string{"auto", "single", "pool", "goroutine"}

// enginesAllowed says which engines this system has, for the error about
// another one, and why eventloop is not among them.
func enginesAllowed(engine string) string {
	s := "allowed on " + runtime.GOOS + " are " + strings.Join(Engines, ", ")
	if engine == "eventloop" || engine == "uring" {
		s += " (eventloop and uring run on Linux only)"
	}
	return s
}
