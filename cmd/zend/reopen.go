package main

import (
	"errors"

	"zend/daemon"
)

// cmdReopen makes the daemon reopen its log file (SIGUSR1, sent only to a
// proven daemon), for logrotate's postrotate. Exit 0 when signalled; 7
// (LSB "not running") when nothing runs, so postrotate can ignore it; 1
// otherwise.
func cmdReopen(g *global) error {
	if len(g.args) > 0 {
		return &exitError{code: 2, msg: "reopen takes no arguments, got " + g.args[0]}
	}
	_, err := daemon.Reopen(g.source)
	if errors.Is(err, daemon.ErrNotRunning) {
		return &exitError{code: 7, msg: err.Error()}
	}
	return err
}
