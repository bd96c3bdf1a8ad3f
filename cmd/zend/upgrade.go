package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"zend/daemon"
)

// cmdUpgrade makes the running daemon start the binary on disk in its
// place with no moment without a listener (SIGUSR2, as nginx). Exit 0 once
// the new daemon serves and holds the pidfile; 1 when it failed (the old
// one keeps serving, and the reason is printed); 7 when nothing runs.
func cmdUpgrade(g *global, stdout io.Writer) error {
	if len(g.args) > 0 {
		return &exitError{code: 2, msg: "upgrade takes no arguments, got " + g.args[0]}
	}
	oldPid, newPid, err := daemon.Upgrade(g.source, 90*time.Second)
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "zend upgraded: pid %d now serves, pid %d is draining\n", newPid, oldPid)
		return nil
	case errors.Is(err, daemon.ErrNotRunning):
		return &exitError{code: 7, msg: err.Error()}
	}
	return err
}
