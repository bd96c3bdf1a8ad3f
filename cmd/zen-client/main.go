// Command zen-client asks a zend server questions, as the chapter's
// client.py does.
//
//	zen-client [-p PORT] [-e] [-ask "Question?"]... [-timeout D] HOST
//
// Without -ask it asks the three aphorisms in random order and prints each
// question with its answer. It exits 1 when the server cannot be reached,
// closes early, or answers a built-in question wrongly; 2 on a bad command
// line.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

func main() {
	err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr)
	os.Exit(exitCode(err, os.Stderr))
}

// usageError is a command line that does not parse.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		if ue.msg != "" {
			fmt.Fprintln(stderr, "zen-client:", ue.msg)
		}
		return 2
	}
	fmt.Fprintln(stderr, "zen-client:", err)
	return 1
}
