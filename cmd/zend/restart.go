package main

import (
	"context"
	"io"
	"os"

	"zend/daemon"
)

// cmdRestart stops the daemon (if it runs) and starts it again.
func cmdRestart(ctx context.Context, g *global, stdout, stderr io.Writer) error {
	if os.Getenv("_ZEND_STAGE") == "" { // only the original process stops
		if len(g.args) > 0 {
			return &exitError{code: 2, msg: "restart takes no arguments, got " + g.args[0]}
		}
		if err := daemon.Stop(g.source, io.Discard); err != nil {
			return err
		}
	}
	return cmdStart(ctx, g, stdout, stderr)
}
