//go:build linux

package protocol

// The uring engine's acceptor: one accept in flight per listener per
// loop, each holding a conversation slot from the moment it is armed, so
// that above max_connections no connection is taken from the kernel's
// backlog (as the eventloop engine checks before each accept), then
// admission. A multishot accept cannot keep that bound: the kernel
// completes the whole backlog before a cancellation lands (seen: 1,965
// descriptors with max_connections = 50). The accept is re-armed in the
// same submission as the round's other requests: no system call of its
// own. The listening socket is non-blocking (it is shared with Go's
// listener, and with the next daemon during an upgrade), and io_uring
// answers an accept on a non-blocking socket with EAGAIN instead of
// waiting: so an accept that finds nothing waits for the listener's
// readiness with a poll, then accepts again (seen: accepts answered
// EAGAIN in a loop, 13 µs of CPU per answer instead of 7).

import (
	"net/netip"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func (l *uloop) addListener(el *elListener) {
	l.lfds[el.fd] = el
	if l.draining {
		l.dropListener(el)
		return
	}
	if !l.paused {
		l.arm(el.fd)
	}
}

func (l *uloop) dropListener(el *elListener) {
	if _, ok := l.lfds[el.fd]; !ok {
		return
	}
	l.disarm(el.fd)
	delete(l.lfds, el.fd)
	l.s.el.Load().acked(el)
}

// arm starts an accept on listener fd, holding a conversation slot for
// it (Server.urArmed, beside open); at max_connections it pauses instead.
func (l *uloop) arm(fd int) {
	if l.armed[fd] != 0 || l.gone || l.paused {
		return
	}
	max := l.s.settings.Load().Limits.MaxConnections
	if n := l.s.urArmed.Add(1) + l.s.open.Load(); max > 0 && n > int64(max) {
		l.s.urArmed.Add(-1)
		l.s.sayFull(max)
		l.pause(true)
		return
	}
	l.submitAccept(fd)
}

// submitAccept queues an accept on listener fd, whose slot is held.
func (l *uloop) submitAccept(fd int) {
	e := l.r.sqe()
	e.opcode = iorOpAccept
	e.fd = int32(fd)
	e.opFlags = unix.SOCK_CLOEXEC
	e.userData = urData(urAccept, uint32(fd), 0)
	l.armed[fd] = urAccept
}

// acceptReady handles the readiness poll of listener fd: accept again,
// in the slot still held, or give the slot back when it was cancelled.
func (l *uloop) acceptReady(fd int, res int32) {
	if _, ok := l.lfds[fd]; res < 0 || !ok || l.paused || l.draining {
		delete(l.armed, fd)
		l.s.urArmed.Add(-1)
		if _, ok := l.lfds[fd]; ok && !l.draining {
			l.arm(fd)
		}
		return
	}
	l.submitAccept(fd)
}

// disarm cancels listener fd's accept; its completion gives the slot back
// (or brings a connection that came first).
func (l *uloop) disarm(fd int) {
	if op := l.armed[fd]; op != 0 {
		l.r.cancel(urData(op, uint32(fd), 0))
	}
}

// accepted handles an accept's completion: a new connection (in the slot
// the accept held), or why the accept ended; then the next accept.
func (l *uloop) accepted(lfd int, res int32, st *Settings) {
	if _, ok := l.lfds[lfd]; ok && res == -int32(unix.EAGAIN) && !l.paused && !l.draining {
		// Nothing queued: wait for the listener, keeping the slot.
		e := l.r.sqe()
		e.opcode = iorOpPollAdd
		e.fd = int32(lfd)
		e.opFlags = unix.POLLIN
		e.userData = urData(urAcceptPoll, uint32(lfd), 0)
		l.armed[lfd] = urAcceptPoll
		return
	}
	delete(l.armed, lfd)
	l.s.urArmed.Add(-1) // the slot the accept held: a conversation's now, or free
	if res < 0 {
		err := syscall.Errno(-res)
		switch err {
		case unix.ECANCELED, unix.EAGAIN, unix.EINTR, unix.ECONNABORTED:
		case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
			if l.backoff == 0 {
				l.backoff = 5 * time.Millisecond
			} else if l.backoff *= 2; l.backoff > time.Second {
				l.backoff = time.Second
			}
			l.s.log.Warn("accept error, backing off", "err", err.Error(), "retry_in", l.backoff.String())
			l.resume = l.now() + int64(l.backoff)
			l.pause(false)
		default:
			if _, ok := l.lfds[lfd]; ok {
				l.s.log.Error("accept failed", "err", err.Error())
			}
		}
	} else {
		l.backoff = 0
		l.s.open.Add(1)
		l.add(int(res), st)
	}
	if _, ok := l.lfds[lfd]; ok && !l.draining {
		l.arm(lfd)
	}
}

// acceptNow takes what is queued on listener fd with accept4, for the
// drain, within max_connections as arm does.
func (l *uloop) acceptNow(lfd int) {
	for i := 0; i < 1024; i++ {
		st := l.s.settings.Load()
		if n := l.s.open.Add(1) + l.s.urArmed.Load(); st.Limits.MaxConnections > 0 && n > int64(st.Limits.MaxConnections) {
			l.s.open.Add(-1)
			return
		}
		fd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			l.s.open.Add(-1)
			return
		}
		l.add(fd, st)
	}
}

// pause cancels the accepts: max_connections is reached (the kernel's
// backlog holds new clients), or after an accept error.
func (l *uloop) pause(full bool) {
	l.full = full
	l.paused = true
	for fd := range l.lfds {
		l.disarm(fd)
	}
}

// resumeListeners accepts again when the reason for the pause is gone.
func (l *uloop) resumeListeners(st *Settings) {
	if !l.paused || l.draining {
		return
	}
	if l.full {
		if max := st.Limits.MaxConnections; max > 0 && l.s.open.Load()+l.s.urArmed.Load() >= int64(max) {
			return
		}
		l.full = false
		l.s.sayAccepting()
	} else if l.now() < l.resume {
		return
	}
	l.paused = false
	for fd := range l.lfds {
		l.arm(fd)
	}
}

// add starts the conversation of an accepted connection, in the slot
// (counted in open) its accept held: admitted (or refused) by its
// session, then its receive armed.
func (l *uloop) add(fd int, st *Settings) {
	peer := peerOf(fd)
	l.s.total.Add(1)
	c := admitConn(l.s, fd, peer, l.now(), st)
	if c == nil {
		return
	}
	var slot uint32
	if n := len(l.free); n > 0 {
		slot = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		slot = uint32(len(l.conns))
		l.conns = append(l.conns, nil)
	}
	l.gen++
	c.ur = &urConn{slot: slot, gen: l.gen & 0xffffff}
	l.conns[slot] = c
	l.open++
	ph, since := c.ss.Phase()
	c.list, c.since = ph, since
	l.lists[ph].insert(c)
	l.sync(c, st, false)
}

// peerOf returns the address of fd's peer (getpeername, into a
// sockaddr on the stack: no garbage per connection).
func peerOf(fd int) netip.AddrPort {
	var rsa unix.RawSockaddrAny
	n := uint32(unsafe.Sizeof(rsa))
	if _, _, e := syscall.RawSyscall(unix.SYS_GETPEERNAME, uintptr(fd), uintptr(unsafe.Pointer(&rsa)), uintptr(unsafe.Pointer(&n))); e != 0 {
		return netip.AddrPort{}
	}
	switch rsa.Addr.Family {
	case unix.AF_INET:
		a := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rsa))
		p := (*[2]byte)(unsafe.Pointer(&a.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(p[0])<<8|uint16(p[1]))
	case unix.AF_INET6:
		a := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rsa))
		p := (*[2]byte)(unsafe.Pointer(&a.Port))
		ip := netip.AddrFrom16(a.Addr).Unmap()
		if a.Scope_id != 0 {
			ip = ip.WithZone(strconv.Itoa(int(a.Scope_id)))
		}
		return netip.AddrPortFrom(ip, uint16(p[0])<<8|uint16(p[1]))
	}
	return netip.AddrPort{}
}
