package config

import "strings"

// Engines are the allowed values of server.engine on this system: Linux
// has every engine, eventloop (on epoll) and uring (on io_uring, falling
// back to eventloop where io_uring is unavailable) included; auto picks
// the best that runs.
var Engines = []string{"auto", "single", "pool", "goroutine", "eventloop", "uring"}

// enginesAllowed says which engines are allowed, for the error about
// another one.
func enginesAllowed(string) string {
	return "allowed are " + strings.Join(Engines, ", ")
}
