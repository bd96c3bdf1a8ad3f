//go:build linux

package protocol

// The uring engine's connection I/O: receives and sends completed by the
// kernel, moved into and out of the connection's session, which frames,
// answers, times out and decides the ending. The receive is multishot
// while the session wants to read (armed once, it delivers every arrival:
// a single-shot receive re-armed per question cost 10.3 µs of CPU per
// answer at pipeline 1 against 6.9, and a third of the pipelined rate),
// and is cancelled when the session stops reading; what the kernel
// delivered before the cancellation landed is held until the session
// reads again. That is at most what one round of completions brings, and
// a round cannot bring more than the loop's provided buffers (128 x 2
// KiB): a client that floods without reading costs up to that much more
// than on eventloop, where the bytes wait in the kernel's socket buffer.

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sbufKeep is the largest send buffer a connection keeps between sends;
// a bigger one (a burst of answers) goes back to the garbage collector.
const sbufKeep = 4 << 10

// armRecv starts c's multishot receive into the provided buffers.
func (l *uloop) armRecv(c *elConn) {
	u := c.ur
	e := l.r.sqe()
	e.opcode = iorOpRecv
	e.fd = c.fd
	e.ioprio = iorRecvMultishot
	e.flags = iosqeBufferSelect
	e.bufGroup = urGroup
	e.userData = urData(urRecv, u.slot, u.gen)
	u.recv, u.cancelled = true, false
}

// received handles a receive's completion for c.
func (l *uloop) received(c *elConn, res int32, flags uint32, st *Settings) {
	u := c.ur
	if flags&urMore == 0 {
		u.recv, u.cancelled = false, false
	}
	var data []byte
	if flags&urBuffer != 0 {
		bid := uint16(flags >> urBufShift)
		defer l.r.recycle(bid)
		if res > 0 {
			data = l.r.buf(bid, int(res))
		}
	}
	switch {
	case u.closed:
	case c.list == phEnded: // lingering: discard until the FIN
		if res <= 0 && res != -int32(unix.ENOBUFS) && res != -int32(unix.ECANCELED) {
			l.close(c, endDrained, "") // and settles c
			return
		}
		if !u.recv {
			l.armRecv(c)
		}
		return
	case res > 0:
		if !u.holding() && c.ss.WantRead() {
			c.ss.Input(l.now(), data, st)
		} else {
			x := l.ioOf(u)
			x.held = append(x.held, data...)
		}
	case res == 0:
		l.ended(c, nil)
	case res == -int32(unix.ENOBUFS) || res == -int32(unix.ECANCELED):
		// Out of buffers (armed again below), or cancelled on purpose.
	default:
		l.ended(c, syscall.Errno(-res))
	}
	l.settle(c, st)
}

// ended records the client's FIN (err nil) or a receive error, after
// whatever is held.
func (l *uloop) ended(c *elConn, err error) {
	u := c.ur
	if u.holding() {
		u.heldEnd, u.io.heldErr = true, err
		return
	}
	if err == nil {
		c.ss.EOF()
	} else {
		c.ss.Fail(err)
	}
}

// sent handles a send's completion for c.
func (l *uloop) sent(c *elConn, res int32, st *Settings) {
	u := c.ur
	u.sending = false
	l.releaseIO(u)
	switch {
	case u.closed:
	case res > 0:
		c.ss.Wrote(l.now(), int(res), st)
	case res < 0 && res != -int32(unix.ECANCELED) && res != -int32(unix.EAGAIN) && res != -int32(unix.EINTR):
		c.ss.Fail(syscall.Errno(-res))
	}
	l.settle(c, st)
}

// settle frees c's slot once it is closed and the kernel has let go of
// it, else brings c in step with its session.
func (l *uloop) settle(c *elConn, st *Settings) {
	u := c.ur
	if u.closed {
		// Once: a closed connection's last completion frees its slot
		// (seen: freed twice, and the loop never exited).
		if !u.recv && !u.sending && l.conns[u.slot] == c {
			l.conns[u.slot] = nil
			l.free = append(l.free, u.slot)
			if u.io != nil {
				u.io.held, u.io.heldErr, u.heldEnd = nil, nil, false
				l.releaseIO(u)
			}
		}
		return
	}
	l.sync(c, st, false)
}

// sync brings c in step with its session after a change: feeds what was
// held once the session reads again, sends its answers (one send at a
// time, of a copy, since the session may move its bytes), closes or
// lingers an ended conversation, arms or cancels the receive, and moves
// c to its phase's timer list.
func (l *uloop) sync(c *elConn, st *Settings, _ bool) {
	ss, u := &c.ss, c.ur
	if u.holding() && ss.WantRead() {
		x := u.io
		held, err := x.held, x.heldErr
		x.held, x.heldErr = x.held[:0], nil
		ss.Input(l.now(), held, st)
		if u.heldEnd {
			u.heldEnd = false
			l.ended(c, err)
		}
		l.releaseIO(u)
	}
	if out := ss.Output(); len(out) > 0 && !u.sending {
		x := l.ioOf(u)
		x.sbuf = append(x.sbuf[:0], out...)
		e := l.r.sqe()
		e.opcode = iorOpSend
		e.fd = c.fd
		e.addr = uint64(uintptr(unsafe.Pointer(&x.sbuf[0])))
		e.len = uint32(len(x.sbuf))
		e.opFlags = unix.MSG_NOSIGNAL
		e.userData = urData(urSend, u.slot, u.gen)
		u.sending = true
	}
	if finish(l, c) {
		return
	}
	switch want := ss.WantRead(); {
	case want && !u.recv && !u.holding():
		l.armRecv(c)
	case !want && u.recv && !u.cancelled:
		l.r.cancel(urData(urRecv, u.slot, u.gen))
		u.cancelled = true
	}
	if ph, since := ss.Phase(); ph != c.list || since != c.since {
		l.move(c, ph, since)
	}
}

// close closes c and logs how its conversation ended. Its requests are
// cancelled; the slot (and the buffer a send reads) is kept until their
// last completions.
func (l *uloop) close(c *elConn, how ending, detail string) {
	u := c.ur
	if u.closed {
		return
	}
	u.closed = true
	if u.recv {
		l.r.cancel(urData(urRecv, u.slot, u.gen))
	}
	if u.sending {
		l.r.cancel(urData(urSend, u.slot, u.gen))
	}
	unix.Close(int(c.fd)) // the socket goes when the kernel's requests let go of it
	c.fd = -1
	l.lists[c.list].remove(c)
	l.s.logEnd(&c.ss, c.ss.clientString(), how, detail)
	c.ss.Close()
	l.open--
	l.s.open.Add(-1)
	l.s.done.Add(1)
	if how == endCut {
		l.s.cutCount.Add(1)
	}
	l.settle(c, nil)
	if l.paused {
		l.resumeListeners(l.s.settings.Load())
	}
}

// linger sends FIN after a drained conversation's answers and discards
// input until the client closes or a short time passes (see loop.linger).
func (l *uloop) linger(c *elConn) {
	if c.list == phEnded {
		return
	}
	if err := unix.Shutdown(int(c.fd), unix.SHUT_WR); err != nil {
		l.close(c, endDrained, "")
		return
	}
	l.move(c, phEnded, min(l.now()+int64(lingerMax), l.drainEnd()))
	if !c.ur.recv {
		l.armRecv(c)
	}
}

func (l *uloop) drainEnd() int64 {
	if l.s.drainEnd.IsZero() {
		return l.now() + int64(lingerMax)
	}
	return int64(l.s.drainEnd.Sub(epoch))
}

// slotsBusy counts the slots still held: open or closed connections the
// kernel has not let go of.
func (l *uloop) slotsBusy() int {
	return len(l.conns) - len(l.free)
}

// holding reports whether input is held for the session.
func (u *urConn) holding() bool { return u.io != nil && (len(u.io.held) > 0 || u.heldEnd) }

// ioOf returns u's urIO, borrowing one from the loop's spares.
func (l *uloop) ioOf(u *urConn) *urIO {
	if u.io == nil {
		if n := len(l.spareIO); n > 0 {
			u.io, l.spareIO = l.spareIO[n-1], l.spareIO[:n-1]
		} else {
			u.io = &urIO{}
		}
	}
	return u.io
}

// releaseIO gives u's urIO back once no send reads it and nothing is
// held; a large send buffer (a burst of answers) goes to the collector.
func (l *uloop) releaseIO(u *urConn) {
	x := u.io
	if x == nil || u.sending || len(x.held) > 0 || u.heldEnd {
		return
	}
	u.io = nil
	if cap(x.sbuf) > sbufKeep {
		x.sbuf = nil
	}
	if cap(x.held) > sbufKeep {
		x.held = nil
	}
	if len(l.spareIO) < maxSpareIO {
		l.spareIO = append(l.spareIO, x)
	}
}
