package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// The ask mode's generator: a few epoll loops that each drive many
// connections with non-blocking reads and writes, as redis-benchmark and
// memtier do, so that the generator costs little CPU per request and is
// not the bottleneck it measures (its CPU time is reported).

// pconn is one connection of an epoll generator.
type pconn struct {
	fd        int
	req, want []byte
	got       []byte
	n         int
	t0        time.Time
}

// askLoop drives conns connections (worker numbers first, first+1, ...)
// until ctx ends.
func askLoop(ctx context.Context, o options, first, conns int, h *hist, cnt *counters) {
	ta, err := net.ResolveTCPAddr("tcp", o.addr)
	if err != nil {
		cnt.fail(err)
		return
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		cnt.fail(err)
		return
	}
	defer unix.Close(epfd)
	byFD := map[int]*pconn{}
	defer func() {
		for fd := range byFD {
			unix.Close(fd)
		}
	}()
	for i := 0; i < conns; i++ {
		fd, err := dialRaw(ta)
		if err != nil {
			cnt.fail(err)
			continue
		}
		c := &pconn{fd: fd}
		c.req, c.want = o.batch(first+i, o.pipeline)
		c.got = make([]byte, len(c.want))
		byFD[fd] = c
		unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)})
	}
	send := func(c *pconn) bool {
		c.t0 = time.Now()
		for off := 0; off < len(c.req); {
			n, err := unix.Write(c.fd, c.req[off:])
			if err == unix.EAGAIN {
				unix.Poll([]unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLOUT}}, 100)
				continue
			}
			if err != nil {
				cnt.fail(err)
				return false
			}
			off += n
		}
		return true
	}
	for _, c := range byFD {
		send(c)
	}
	events := make([]unix.EpollEvent, 256)
	dl, _ := ctx.Deadline()
	for ctx.Err() == nil {
		ms := int(time.Until(dl) / time.Millisecond)
		if ms <= 0 {
			return
		}
		n, err := unix.EpollWait(epfd, events, min(ms, 100))
		if err != nil && err != unix.EINTR {
			cnt.fail(err)
			return
		}
		for i := 0; i < n; i++ {
			c := byFD[int(events[i].Fd)]
			k, err := unix.Read(c.fd, c.got[c.n:])
			if err == unix.EAGAIN {
				continue
			}
			if err != nil || k == 0 {
				if err == nil {
					err = fmt.Errorf("server closed the connection")
				}
				cnt.fail(err)
				unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
				continue
			}
			c.n += k
			if c.n < len(c.want) {
				continue
			}
			if !bytes.Equal(c.got, c.want) {
				cnt.fail(fmt.Errorf("%w: got %q, want %q", errWrong, clip(c.got), clip(c.want)))
				return
			}
			h.record(time.Since(c.t0))
			cnt.requests.Add(uint64(o.pipeline))
			c.n = 0
			if !send(c) {
				unix.EpollCtl(epfd, unix.EPOLL_CTL_DEL, c.fd, nil)
			}
		}
	}
}

// dialRaw connects a TCP socket and makes it non-blocking.
func dialRaw(ta *net.TCPAddr) (int, error) {
	family := unix.AF_INET
	var sa unix.Sockaddr
	if ip4 := ta.IP.To4(); ip4 != nil {
		s := &unix.SockaddrInet4{Port: ta.Port}
		copy(s.Addr[:], ip4)
		sa = s
	} else {
		family = unix.AF_INET6
		s := &unix.SockaddrInet6{Port: ta.Port}
		copy(s.Addr[:], ta.IP.To16())
		sa = s
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", ta, err)
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
