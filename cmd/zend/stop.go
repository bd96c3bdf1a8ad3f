package main

import (
	"io"

	"zend/daemon"
)

// cmdStop stops the daemon and waits until it has exited. Exit 0, also
// when nothing was running.
func cmdStop(g *global, stderr io.Writer) error {
	if len(g.args) > 0 {
		return &exitError{code: 2, msg: "stop takes no arguments, got " + g.args[0]}
	}
	return daemon.Stop(g.source, stderr)
}
