package main

import (
	"context"
	"io"

	"zend/daemon"
)

// cmdRun serves in the foreground until SIGTERM or SIGINT.
func cmdRun(ctx context.Context, g *global, stderr io.Writer) error {
	if len(g.args) > 0 {
		return &exitError{code: 2, msg: "run takes no arguments, got " + g.args[0]}
	}
	return daemon.Run(ctx, daemon.RunOptions{Source: g.source, Stderr: stderr})
}
