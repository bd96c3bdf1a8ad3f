package daemon

import (
	"context"
	"io"

	"zend/config"
)

// RunOptions configure Run.
type RunOptions struct {
	// Source is where the configuration comes from; SIGHUP loads it again.
	Source config.Source
	// Stderr receives the log when log.file is unset or "-".
	Stderr io.Writer
}

// Run serves in the foreground ("zend run") until ctx ends or SIGTERM or
// SIGINT arrives, then drains for at most limits.shutdown_timeout; a second
// SIGTERM/SIGINT ends the drain at once. Started as root with daemon.user
// set, it binds and then drops to that user, as "zend start" does (the same
// assembly path). SIGHUP reloads the configuration from opts.Source,
// keeping the old one when the new one is invalid; SIGUSR1 reopens the log
// file. Run returns nil after a shutdown, or the error that kept the
// service from starting (a configuration error matches config.ErrInvalid)
// or from serving.
func Run(ctx context.Context, opts RunOptions) error {
	return assemble(ctx, opts.Source, launch{
		stderr: opts.Stderr,
		ready: func(in *instance) {
			in.notify(sdReady, "STATUS="+in.statusLine())
		},
		fail: func(err error) error { return err },
	})
}
