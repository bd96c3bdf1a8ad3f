//go:build !linux

package config

import (
	"runtime"
	"strings"
)

// Engines are the allowed values of server.engine on this system. The
// eventloop engine runs on Linux's epoll only: the BSDs and macOS have
// the other three.
var Engines = []string{"single", "pool", "goroutine"}

// enginesAllowed says which engines this system has, for the error about
// another one, and why eventloop is not among them.
func enginesAllowed(engine string) string {
	s := "allowed on " + runtime.GOOS + " are " + strings.Join(Engines, ", ")
	if engine == "eventloop" {
		s += " (eventloop runs on Linux's epoll only)"
	}
	return s
}
