package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"zend/config"
	"zend/daemon"
)

// cmdReload validates the configuration, then asks the daemon to reload
// and reports its verdict. Exit 0 when applied; 1 when the file is invalid
// (the daemon is not signalled) or the daemon refused it; 7 (LSB "not
// running") when no daemon runs.
func cmdReload(g *global, stdout io.Writer) error {
	if len(g.args) > 0 {
		return &exitError{code: 2, msg: "reload takes no arguments, got " + g.args[0]}
	}
	pid, pending, err := daemon.Reload(g.source, 30*time.Second)
	switch {
	case err == nil:
		fmt.Fprintf(stdout, "zend reloaded (pid %d)\n", pid)
		for _, p := range pending {
			fmt.Fprintf(stdout, "  needs restart, running value kept: %s\n", p)
		}
		return nil
	case errors.Is(err, config.ErrInvalid):
		return fmt.Errorf("configuration invalid, daemon not signalled:\n%w", err)
	case errors.Is(err, daemon.ErrNotRunning):
		return &exitError{code: 7, msg: err.Error()}
	}
	return err
}
