//go:build linux

package protocol

// The event loop's acceptor: listening sockets shared by every loop
// (EPOLLEXCLUSIVE), accepting within max_connections, backing off on
// accept errors, and admitting each new connection.

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// dupListenerFD returns a non-blocking duplicate of ln's socket.
func dupListenerFD(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, errors.New("eventloop engine: the listener has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(f uintptr) { fd, derr = unix.FcntlInt(f, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (l *loop) addListener(el *elListener) {
	l.lfds[el.fd] = el
	if l.draining {
		l.dropListener(el)
		return
	}
	l.epollListener(el.fd, true)
}

func (l *loop) dropListener(el *elListener) {
	if _, ok := l.lfds[el.fd]; !ok {
		return
	}
	if !l.paused[el.fd] {
		l.epollListener(el.fd, false)
	}
	delete(l.lfds, el.fd)
	delete(l.paused, el.fd)
	l.s.el.Load().acked(el)
}

// accept takes the connections waiting on listener fd.
func (l *loop) accept(lfd int) {
	for i := 0; i < 64; i++ {
		// Loaded for each connection: a reload applies to every
		// connection accepted after it, as on the other engines (the
		// batch's settings could predate it).
		st := l.s.settings.Load()
		max := st.Limits.MaxConnections
		if n := l.s.open.Add(1); max > 0 && n > int64(max) {
			l.s.open.Add(-1)
			l.pauseAll(true)
			return
		}
		fd, sa, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			l.s.open.Add(-1)
			switch {
			case err == unix.EAGAIN || err == unix.EINTR || err == unix.ECONNABORTED:
				return
			case err == unix.EMFILE || err == unix.ENFILE || err == unix.ENOBUFS || err == unix.ENOMEM:
				if l.backoff == 0 {
					l.backoff = 5 * time.Millisecond
				} else if l.backoff *= 2; l.backoff > time.Second {
					l.backoff = time.Second
				}
				l.s.log.Warn("accept error, backing off", "err", err.Error(), "retry_in", l.backoff.String())
				l.resume = l.now() + int64(l.backoff)
				l.pauseAll(false)
				return
			default:
				l.s.log.Error("accept failed", "err", err.Error())
				return
			}
		}
		l.backoff = 0
		l.s.total.Add(1)
		l.add(fd, sa, st)
	}
}

// pauseAll takes the listeners out of this loop's epoll: because
// max_connections is reached (the kernel's backlog holds new clients), or
// to back off after an accept error.
func (l *loop) pauseAll(full bool) {
	if full && !l.full {
		l.s.sayFull(l.s.settings.Load().Limits.MaxConnections)
	}
	l.full = full
	for fd := range l.lfds {
		if !l.paused[fd] {
			l.epollListener(fd, false)
			l.paused[fd] = true
		}
	}
}

// resumeListeners puts paused listeners back when the reason is gone.
func (l *loop) resumeListeners(st *Settings) {
	if len(l.paused) == 0 || l.draining {
		return
	}
	if l.full {
		if max := st.Limits.MaxConnections; max > 0 && l.s.open.Load() >= int64(max) {
			return
		}
		l.full = false
		l.s.sayAccepting()
	} else if l.now() < l.resume {
		return
	}
	for fd := range l.paused {
		l.epollListener(fd, true)
	}
	clear(l.paused)
}

// add starts the conversation of an accepted connection: admitted (or
// refused) by its session, then registered in epoll and its timer list.
func (l *loop) add(fd int, sa unix.Sockaddr, st *Settings) {
	c := admitConn(l.s, fd, addrPort(sa), l.now(), st)
	if c == nil {
		return
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
		c.ss.Close()
		unix.Close(fd)
		l.s.open.Add(-1)
		l.s.done.Add(1)
		return
	}
	for fd >= len(l.conns) {
		l.conns = append(l.conns, make([]*elConn, max(64, len(l.conns)))...)
	}
	l.conns[fd] = c
	l.open++
	ph, since := c.ss.Phase()
	c.list, c.since = ph, since
	l.lists[ph].insert(c)
}

// admitConn starts the conversation of an accepted connection on a loop
// engine, counted in open: its session admits or refuses the client (a
// refused one is closed, and nil returned), then the socket gets
// TCP_NODELAY and limits.send_buffer.
func admitConn(s *Server, fd int, peer netip.AddrPort, now int64, st *Settings) *elConn {
	c := &elConn{fd: int32(fd), in: true}
	c.ss.start(s, peer, now, st)
	if _, _, done := c.ss.Ending(); done { // refused
		c.ss.Close()
		unix.Close(fd)
		s.open.Add(-1)
		s.done.Add(1)
		return nil
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if b := st.Limits.SendBuffer; b > 0 {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, b)
	}
	return c
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(a.Addr).Unmap() // an IPv4 client of a dual-stack socket
		if a.ZoneId != 0 {
			ip = ip.WithZone(strconv.Itoa(int(a.ZoneId)))
		}
		return netip.AddrPortFrom(ip, uint16(a.Port))
	}
	return netip.AddrPort{}
}
