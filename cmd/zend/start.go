package main

import (
	"context"
	"io"
	"os"

	"zend/daemon"
)

// cmdStart daemonises and returns when the daemon serves (exit 0) or has
// failed (exit 1 with the reason; nothing left behind). main runs again in
// each stage of the daemon; daemon.Start tells them apart.
func cmdStart(ctx context.Context, g *global, stdout, stderr io.Writer) error {
	if len(g.args) > 0 {
		return &exitError{code: 2, msg: g.command + " takes no arguments, got " + g.args[0]}
	}
	err := daemon.Start(ctx, daemon.StartOptions{Source: g.source, Args: os.Args, Stdout: stdout, Stderr: stderr})
	if daemon.IsReported(err) {
		return &exitError{code: 1}
	}
	return err
}
