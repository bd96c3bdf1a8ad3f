//go:build linux

package protocol

// The event loop's poller: one epoll instance and one goroutine locked to
// a thread per loop, the operations other goroutines queue for it, and how
// long it may sleep.

import (
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// loopCtl is what every engine's loop shares: the operations other
// goroutines queue for it, the eventfd that wakes it, and its exit.
type loopCtl struct {
	evfd      int
	mu        sync.Mutex // guards ops, exited and fdsClosed
	ops       []func()
	exited    bool       // the loop's goroutine has returned: do runs ops itself
	fdsClosed bool       // the group closed the loop's descriptors: wake does nothing
	after     sync.Mutex // serialises the ops do runs after the loop exited
	gone      bool       // set by the loop before it exits: no poller calls after
}

// loop is one event loop: an epoll instance and a goroutine locked to a
// thread.
type loop struct {
	loopCtl
	s     *Server
	epfd  int
	conns []*elConn // by fd
	timers
	open int
	rbuf []byte

	lfds    map[int]*elListener // listeners registered here
	paused  map[int]bool        // listeners taken out of epoll (full, or accept errors)
	resume  int64               // ns: when paused listeners go back
	backoff time.Duration       // accept error backoff
	full    bool                // paused because max_connections is reached

	draining bool
	killed   bool
}

func newLoop(s *Server) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, evfd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(evfd)}); err != nil {
		unix.Close(epfd)
		unix.Close(evfd)
		return nil, err
	}
	return &loop{loopCtl: loopCtl{evfd: evfd}, s: s, epfd: epfd, rbuf: make([]byte, readBuf),
		lfds: map[int]*elListener{}, paused: map[int]bool{}}, nil
}

// do runs f on the loop's goroutine or, once the loop has exited, on the
// caller's (one at a time): an operation queued as the loop exits still
// runs, so a Serve waiting for its listener to be taken in (or dropped)
// is always answered.
func (l *loopCtl) do(f func()) {
	l.mu.Lock()
	if l.exited {
		l.mu.Unlock()
		l.after.Lock()
		defer l.after.Unlock()
		f()
		return
	}
	l.ops = append(l.ops, f)
	l.mu.Unlock()
	l.wake()
}

// exit ends the loop: no poller calls from here on; operations queued until
// now run here, later ones in do.
func (l *loopCtl) exit() {
	l.after.Lock()
	defer l.after.Unlock()
	l.gone = true
	l.mu.Lock()
	l.exited = true
	ops := l.ops
	l.ops = nil
	l.mu.Unlock()
	for _, f := range ops {
		f()
	}
}

// wake makes the loop look at its operations and the server's state; a
// no-op once the group closed the loop's descriptors.
func (l *loopCtl) wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fdsClosed {
		return
	}
	var one = [8]byte{1}
	unix.Write(l.evfd, one[:])
}

// now is the sessions' clock.
func (l *loop) now() int64 { return mono() }

// closeFDs closes the loop's epoll and event descriptors; the group calls
// it once every loop has returned.
func (l *loop) closeFDs() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.fdsClosed {
		l.fdsClosed = true
		unix.Close(l.epfd)
		unix.Close(l.evfd)
	}
}

// run is the loop.
func (l *loop) run() {
	runtime.LockOSThread()
	events := make([]unix.EpollEvent, 256)
	for {
		l.runOps()
		if l.s.draining.Load() && !l.draining {
			l.beginDrain()
		}
		if l.s.killed() && !l.killed {
			l.kill()
		}
		if l.draining && l.open == 0 && len(l.lfds) == 0 {
			l.exit()
			return
		}
		// Events ready now are taken without blocking (and without the
		// runtime's syscall bookkeeping); only an idle loop blocks.
		n, err := rawEpollPoll(l.epfd, events)
		if n == 0 && err == nil {
			n, err = unix.EpollWait(l.epfd, events, l.waitMs())
		}
		if err != nil && err != unix.EINTR {
			l.s.log.Error("epoll_wait failed", "err", err.Error())
			time.Sleep(10 * time.Millisecond)
			continue
		}
		st := l.s.settings.Load()
		for i := 0; i < n; i++ {
			ev := &events[i]
			fd := int(ev.Fd)
			switch {
			case fd == l.evfd:
				var b [8]byte
				unix.Read(l.evfd, b[:])
			case l.lfds[fd] != nil:
				l.accept(fd)
			default:
				if fd < len(l.conns) && l.conns[fd] != nil {
					l.event(l.conns[fd], ev.Events, st)
				}
			}
		}
		l.expire(l, st)
		l.resumeListeners(st)
	}
}

func (l *loopCtl) runOps() {
	l.mu.Lock()
	ops := l.ops
	l.ops = nil
	l.mu.Unlock()
	for _, f := range ops {
		f()
	}
}

// waitMs is how long epoll_wait may sleep.
func (l *loop) waitMs() int {
	return l.timers.waitMs(l.s.settings.Load().Limits, l.now(), len(l.paused) > 0, l.full, l.resume, l.draining)
}

func (l *loop) drainEnd() int64 {
	if l.s.drainEnd.IsZero() {
		return l.now() + int64(time.Hour)
	}
	return int64(l.s.drainEnd.Sub(epoch))
}

func (l *loop) epollListener(fd int, on bool) {
	if l.gone {
		return
	}
	if on {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLEXCLUSIVE, Fd: int32(fd)})
	} else {
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	}
}

// ctl sets epoll's interest in c to c.in and c.out.
func (l *loop) ctl(c *elConn) {
	var ev uint32
	if c.in {
		ev |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if c.out {
		ev |= unix.EPOLLOUT
	}
	rawEpollCtl(l.epfd, unix.EPOLL_CTL_MOD, int(c.fd), &unix.EpollEvent{Events: ev, Fd: c.fd})
}
