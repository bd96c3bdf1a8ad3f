//go:build linux

package protocol

import (
	"errors"
	"net"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// The event-loop engine: the chapter's listing 7-6 done right, on raw
// epoll. Server.workers loops (default: half the CPUs) share each listening
// socket, registered in every loop with EPOLLEXCLUSIVE so one loop wakes
// per connection. A loop owns its connections: no locks on the hot path.
//
// A connection costs a small struct while idle: no goroutine, no buffer.
// Reads go into the loop's buffer; only a question cut across reads, or
// answers the kernel would not take at once, get a buffer of their own,
// from a pool, given back as soon as it empties.
//
// Timeouts need no timer per connection: a session is in exactly one
// phase (idle, in a question, waiting to write, waiting out answer_delay;
// and a drained connection lingers after its FIN), every phase has one
// timeout for all its connections, so each loop keeps a list per phase
// ordered by when they entered it, and only the list heads are checked.
//
// The files, as gnet splits its engine: eventloop.go the group of loops
// and the Serve glue; el_poller.go a loop (epoll, its operations queue,
// its sleep); el_acceptor.go listening sockets and admission;
// el_conn.go a connection's I/O to and from its session; el_timers.go
// the per-phase timeout lists, the drain and the kill. The group owns the loops' epoll and event
// descriptors and closes them once every loop has returned.

// elListener is a listening socket served by every loop.
type elListener struct {
	ln   net.Listener
	fd   int
	acks int
	done chan struct{}
}

// engineLoop is one loop of the eventloop (loop) or uring (uloop)
// engine, as the group drives it.
type engineLoop interface {
	run()
	do(f func())
	wake()
	addListener(el *elListener)
	dropListener(el *elListener)
	closeFDs()
}

// elGroup is the server's set of loops.
type elGroup struct {
	loops []engineLoop
	mu    sync.Mutex
	lns   map[net.Listener]*elListener
	wg    sync.WaitGroup
}

// acked records that one loop let go of el; the last one closes its
// descriptor and ends its Serve.
func (g *elGroup) acked(el *elListener) {
	g.mu.Lock()
	el.acks++
	last := el.acks == len(g.loops)
	g.mu.Unlock()
	if last {
		unix.Close(el.fd)
		close(el.done)
	}
}

// startLoops starts the server's loops once.
func (s *Server) startLoops() error {
	s.elOnce.Do(func() {
		engine := s.Engine()
		n := s.workers
		if n <= 0 {
			n = defaultLoops(engine, runtime.GOMAXPROCS(0))
		}
		g := &elGroup{lns: map[net.Listener]*elListener{}}
		for i := 0; i < n; i++ {
			var l engineLoop
			var err error
			if engine == EngineURing {
				l, err = newULoop(s)
				if errors.Is(err, ErrNoURing) {
					// The probe passed, the loops cannot: fall back
					// for all of them.
					s.log.Warn("io_uring unavailable, engine uring falls back to eventloop", "err", err.Error())
					g.closeFDs()
					g.loops = nil
					engine = EngineEventLoop
					s.eng.Store(engine)
					if s.workers <= 0 {
						n = defaultLoops(engine, runtime.GOMAXPROCS(0))
					}
					i = -1
					continue
				}
			} else {
				l, err = newLoop(s)
			}
			if err != nil {
				s.elErr = err
				g.closeFDs()
				return
			}
			g.loops = append(g.loops, l)
		}
		for _, l := range g.loops {
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				l.run()
			}()
		}
		s.el.Store(g)
	})
	return s.elErr
}

// serveEventLoop serves ln on the loops until the listener is removed
// (CloseListener) or the server shuts down.
func (s *Server) serveEventLoop(ln net.Listener) error {
	if err := s.startLoops(); err != nil {
		return err
	}
	fd, err := dupListenerFD(ln)
	if err != nil {
		return err
	}
	el := &elListener{ln: ln, fd: fd, done: make(chan struct{})}
	g := s.el.Load()
	g.mu.Lock()
	g.lns[ln] = el
	g.mu.Unlock()
	for _, l := range g.loops {
		l.do(func() { l.addListener(el) })
	}
	if s.shutdown.Load() {
		s.removeELListener(ln)
	}
	<-el.done
	return ErrServerClosed
}

// removeELListener takes ln out of every loop and ends its Serve.
func (s *Server) removeELListener(ln net.Listener) {
	g := s.el.Load()
	if g == nil {
		return
	}
	g.mu.Lock()
	el := g.lns[ln]
	delete(g.lns, ln)
	g.mu.Unlock()
	if el == nil {
		return
	}
	for _, l := range g.loops {
		l.do(func() { l.dropListener(el) })
	}
}

// closeFDs closes every loop's descriptors, once all the loops have
// returned: the group is their one owner.
func (g *elGroup) closeFDs() {
	for _, l := range g.loops {
		l.closeFDs()
	}
}

// defaultLoops is the number of loops when server.workers is 0: one per
// two CPUs (at least one), for both loop engines. Measured on 2 CPUs with
// the load generator beside the server, 50 connections: two epoll loops
// cost 12.5 µs of CPU per answer at pipeline 1 against 7.6 µs for one,
// and served 1.33M answers/s at pipeline 16 against 1.77M; two uring
// loops 9.95 µs against 6.83, and 1.34M against 1.98M. Every loop that
// wakes for a few answers pays its own wait and its thread's wake-up, and
// leaves the kernel's TCP work less CPU. (Two uring loops once looked as
// cheap as one: its multishot accept had put every connection on one
// loop.) Half the CPUs still grows with the machine.
func defaultLoops(_ Engine, cpus int) int {
	return max(1, cpus/2)
}
