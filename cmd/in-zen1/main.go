// Command in-zen1 answers one client for inetd's nowait mode (xinetd's
// wait = no), as the chapter's in_zen1.py: inetd accepts the connection
// and starts in-zen1 with the socket on fd 0 (and 1 and 2).
//
//	in-zen1 [-c FILE] [-log FILE|syslog|journal]
//
// It serves that one conversation with the daemon's protocol code and
// limits, then exits 0. Before anything can write, fds 1 and 2 are moved
// off the socket (onto the log when it is a file), so that nothing but
// protocol bytes ever reaches the client. It logs to syslog unless -log,
// or log.file = "journal", says otherwise; see inetd.Boot.
package main

import (
	"context"
	"flag"
	"os"
	"os/signal"
	"syscall"

	"zend/daemon/inetd"
	"zend/daemon/settings"
	"zend/protocol"
)

func main() {
	inetd.GuardStdio() // first: fds 1 and 2 are the client's socket
	os.Exit(run(os.Args[1:]))
}

// run serves the conversation on fd 0 and returns the exit code.
func run(args []string) int {
	cfg, log, code := inetd.Boot(flag.NewFlagSet("in-zen1", flag.ContinueOnError), args, "in-zen1 [-c FILE] [-log FILE|syslog|journal]")
	if code != 0 {
		return code
	}
	conn, err := inetd.Conn()
	if err != nil {
		log.Error("no client", "err", err.Error())
		return 1
	}
	srv, err := protocol.NewServer(protocol.EngineGoroutine, 1, settings.From(cfg), log)
	if err != nil {
		log.Error("cannot serve", "err", err.Error())
		return 1
	}
	// inetd sends SIGTERM when it stops: finish the question, then go.
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		<-sigc
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Limits.ShutdownTimeout.D())
		defer cancel()
		srv.Shutdown(ctx)
	}()
	srv.ServeConn(conn)
	return 0
}
