// Command zend serves the Zen-of-Python question/answer protocol.
//
//	zend [-c FILE] [flags] run       serve in the foreground, log to stderr
//	zend [-c FILE] [flags] start     daemonise; return when serving
//	zend [-c FILE] stop|restart|reload|reopen|status|upgrade
//	zend [-c FILE] [flags] check     validate and print the effective config
//	zend version
//
// Run "zend help" for the flags.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"zend/daemon"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// exitError carries an exit code other than 1, and an optional message.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// errUsage is a command line that does not parse; the usage is printed.
var errUsage = &exitError{code: 2}

// exitCode prints err and turns it into the process's exit code: 0 for
// nil, the code of an *exitError, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "zend:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "zend:", err)
	return 1
}

// run parses args and runs the command they name.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	g, err := parseGlobal(args, stderr)
	if err != nil {
		return err
	}
	if g.version {
		g.command = "version"
	}
	switch g.command {
	case "run":
		return cmdRun(ctx, g, stderr)
	case "check":
		return cmdCheck(g, stdout, stderr)
	case "start":
		return cmdStart(ctx, g, stdout, stderr)
	case "stop":
		return cmdStop(g, stderr)
	case "restart":
		return cmdRestart(ctx, g, stdout, stderr)
	case "reload":
		return cmdReload(g, stdout)
	case "status":
		return cmdStatus(g, stdout)
	case "upgrade":
		return cmdUpgrade(g, stdout)
	case "reopen":
		return cmdReopen(g)
	case "version":
		fmt.Fprintln(stdout, "zend", daemon.Version())
		return nil
	case "help":
		usage(stdout)
		return nil
	case "":
		usage(stderr)
		return errUsage
	default:
		fmt.Fprintf(stderr, "zend: unknown command %q\n", g.command)
		usage(stderr)
		return errUsage
	}
}
