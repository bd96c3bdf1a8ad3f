//go:build linux

package protocol

// The event loop's connection I/O: moving bytes between a non-blocking
// socket and the connection's session (which frames, answers, times out
// and decides the ending), keeping epoll's interest and the connection's
// timer list in step with the session, lingering and closing.

import (
	"errors"

	"golang.org/x/sys/unix"
)

// readBuf is a loop's read buffer.
const readBuf = 16 << 10

// elConn is one connection of a loop.
type elConn struct {
	fd         int32
	in, out    bool  // registered for EPOLLIN, EPOLLOUT
	list       phase // the timer list it is in: its session's phase, or phEnded while lingering
	prev, next *elConn
	since      int64 // its place in the list: the session's Phase time, or the linger's end
	ss         session
	ur         *urConn // the uring engine's state; nil on the eventloop engine
}

// errReset is the error of a connection gone both ways while not read.
var errReset = errors.New("connection reset by peer")

// event handles epoll events of c.
func (l *loop) event(c *elConn, evs uint32, st *Settings) {
	if c.list == phEnded { // lingering
		if evs&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
			l.discard(c)
		}
		return
	}
	writable := evs&unix.EPOLLOUT != 0
	switch {
	case evs&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && c.in:
		l.read(c, st)
	case evs&(unix.EPOLLHUP|unix.EPOLLERR) != 0 && len(c.ss.Output()) == 0:
		// Not reading (an answer waits out answer_delay, or input is
		// held back), and the connection is gone both ways: nothing
		// can be delivered.
		c.ss.Fail(errReset)
	case evs&(unix.EPOLLHUP|unix.EPOLLERR) != 0:
		writable = true // the write reports the error
	}
	l.sync(c, st, writable)
}

// read reads once into c's session.
func (l *loop) read(c *elConn, st *Settings) {
	n, err := rawRead(int(c.fd), l.rbuf)
	switch {
	case n > 0:
		c.ss.Input(l.now(), l.rbuf[:n], st)
	case n == 0:
		c.ss.EOF()
	case err == unix.EAGAIN || err == unix.EINTR:
	default:
		c.ss.Fail(err)
	}
}

// sync brings c in step with its session after a change: writes the
// answers the kernel takes (when the socket may be writable), closes or
// lingers an ended conversation, sets epoll's interest, and moves c to
// its phase's timer list.
func (l *loop) sync(c *elConn, st *Settings, writable bool) {
	ss := &c.ss
	if !c.out {
		writable = true // not waiting for EPOLLOUT: try at once
	}
	for writable && len(ss.Output()) > 0 {
		out := ss.Output()
		n, err := rawWrite(int(c.fd), out)
		if n > 0 {
			ss.Wrote(l.now(), n, st)
		}
		switch {
		case err == unix.EINTR:
		case err == unix.EAGAIN || (err == nil && n < len(out)):
			writable = false // the kernel's buffer is full: wait for EPOLLOUT
		case err != nil:
			ss.Fail(err) // and Output is empty: the loop ends
		}
	}
	if finish(l, c) {
		return
	}
	in, out := ss.WantRead(), len(ss.Output()) > 0
	if in != c.in || out != c.out {
		c.in, c.out = in, out
		l.ctl(c)
	}
	if ph, since := ss.Phase(); ph != c.list || since != c.since {
		l.move(c, ph, since)
	}
}

// close closes c and logs how its conversation ended.
func (l *loop) close(c *elConn, how ending, detail string) {
	if c.fd < 0 {
		return
	}
	fd := int(c.fd)
	unix.Close(fd) // also removes it from epoll
	l.conns[fd] = nil
	l.lists[c.list].remove(c)
	c.fd = -1
	name := c.ss.clientString()
	l.s.logEnd(&c.ss, name, how, detail)
	c.ss.Close()
	l.open--
	l.s.open.Add(-1)
	l.s.done.Add(1)
	if how == endCut {
		l.s.cutCount.Add(1)
	}
	if l.full {
		l.resumeListeners(l.s.settings.Load())
	}
}

// linger sends FIN after a drained conversation's answers and discards
// input until the client closes or a short time passes, so unread bytes
// do not make the kernel reset the connection and destroy answers in
// flight.
func (l *loop) linger(c *elConn) {
	if err := unix.Shutdown(int(c.fd), unix.SHUT_WR); err != nil {
		l.close(c, endDrained, "")
		return
	}
	l.move(c, phEnded, min(l.now()+int64(lingerMax), l.drainEnd()))
	if !c.in || c.out {
		c.in, c.out = true, false
		l.ctl(c)
	}
}

// discard reads and drops what a lingering client sends; its FIN or an
// error ends the linger.
func (l *loop) discard(c *elConn) {
	n, err := rawRead(int(c.fd), l.rbuf)
	if n <= 0 && err != unix.EAGAIN && err != unix.EINTR {
		l.close(c, endDrained, "")
	}
}
