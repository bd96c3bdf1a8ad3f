package config

import "strings"

// Engines are the allowed values of server.engine on this system: Linux
// has every engine, eventloop (on epoll) included.
var Engines = []string{"single", "pool", "goroutine", "eventloop"}

// enginesAllowed says which engines are allowed, for the error about
// another one.
func enginesAllowed(string) string {
	return "allowed are " + strings.Join(Engines, ", ")
}
