// Command in-zen2 serves clients for inetd's wait mode (xinetd's wait =
// yes), as the chapter's in_zen2.py: inetd starts it with the listening
// socket on fd 0 when the first client arrives, and takes the port back
// when it exits.
//
//	in-zen2 [-c FILE] [-log FILE|syslog|journal] [-timeout 8s]
//
// It accepts and serves clients concurrently with the daemon's protocol
// code and limits, and exits 0 once it has had no new connection for
// -timeout and no conversation is still open. It stops accepting before it
// exits without closing the port inetd owns, so a client that arrives
// meanwhile is either served or left in the backlog for the next in-zen2.
package main

import (
	"context"
	"flag"
	"net"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"zend/daemon/inetd"
	"zend/daemon/settings"
	"zend/protocol"
)

func main() {
	inetd.GuardStdio() // first: fds 1 and 2 may be inetd's socket
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("in-zen2", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 8*time.Second, "exit after this long without a new connection")
	cfg, log, code := inetd.Boot(fs, args, "in-zen2 [-c FILE] [-log FILE|syslog|journal] [-timeout 8s]")
	if code == 0 && *timeout <= 0 {
		log.Error("bad command line", "err", "-timeout must be positive")
		code = 2
	}
	if code != 0 {
		turnAway(*timeout)
		return code
	}

	ln, err := inetd.Listener()
	if err != nil {
		log.Error("refusing to start", "err", err.Error())
		return 1
	}
	srv, err := protocol.NewServer(protocol.EngineGoroutine, 1, settings.From(cfg), log)
	if err != nil {
		log.Error("cannot serve", "err", err.Error())
		return 1
	}
	il := &idleListener{Listener: ln}
	il.touch()
	served := make(chan struct{})
	go func() {
		srv.Serve(il)
		close(served)
	}()

	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	tick := time.NewTicker(min(*timeout/8, 250*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case sig := <-sigc:
			log.Info("stopping", "signal", sig.String())
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Limits.ShutdownTimeout.D())
			res, _ := srv.Shutdown(ctx)
			cancel()
			log.Info("stopped", "finished", res.Finished, "cut_off", res.Cut)
			return 0
		case <-tick.C:
			st := srv.Stats()
			if st.Open > 0 || st.Total != st.Done {
				il.touch() // a conversation is open: not idle
				continue
			}
			if time.Since(il.last()) < *timeout {
				continue
			}
			// Idle: stop accepting (the port stays inetd's), then finish
			// whatever was accepted in the meantime.
			il.stop()
			<-served
			for st = srv.Stats(); st.Total != st.Done; st = srv.Stats() {
				time.Sleep(10 * time.Millisecond)
			}
			log.Info("no new connection, exiting", "idle_for", timeout.String(), "served", st.Total)
			return 0
		}
	}
}

// idleListener remembers when it last accepted, and can stop accepting
// without closing the socket inetd owns: connections still in the backlog
// stay there for the next in-zen2.
type idleListener struct {
	net.Listener
	mu      sync.Mutex
	at      time.Time
	stopped atomic.Bool
}

func (l *idleListener) touch() {
	l.mu.Lock()
	l.at = time.Now()
	l.mu.Unlock()
}

func (l *idleListener) last() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.at
}

// stop makes a pending and every later Accept fail; a connection accepted
// before that is returned and served.
func (l *idleListener) stop() {
	l.stopped.Store(true)
	if tl, ok := l.Listener.(*net.TCPListener); ok {
		tl.SetDeadline(time.Now())
	}
}

func (l *idleListener) Accept() (net.Conn, error) {
	if l.stopped.Load() {
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		if l.stopped.Load() {
			return nil, net.ErrClosed
		}
		return nil, err
	}
	l.touch()
	return c, nil
}

// Close does not close the socket: it is inetd's, and clients waiting in
// its backlog belong to the next in-zen2.
func (l *idleListener) Close() error {
	l.stop()
	return nil
}

// turnAway is what an in-zen2 that cannot serve does before it exits (its
// reason is logged): for a while it accepts the clients waiting on inetd's
// socket and closes them, so they are told at once instead of timing
// out, and inetd, which starts a wait-mode server whenever a client is
// waiting, does not start it again and again (seen: 259 starts in a row
// until inetd gave up on the service).
func turnAway(d time.Duration) {
	if d <= 0 {
		d = 8 * time.Second
	}
	ln, err := inetd.Listener()
	if err != nil {
		return
	}
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return
	}
	tl.SetDeadline(time.Now().Add(d))
	for {
		c, err := tl.Accept()
		if err != nil {
			return // the deadline, or inetd's socket is gone
		}
		c.Close()
	}
}
