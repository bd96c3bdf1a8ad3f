//go:build linux

package protocol

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The event-loop engine: the chapter's listing 7-6 done right, on raw
// epoll. Server.workers loops (default: one per CPU) share each listening
// socket, registered in every loop with EPOLLEXCLUSIVE so one loop wakes
// per connection. A loop owns its connections: no locks on the hot path.
//
// A connection costs a small struct while idle: no goroutine, no buffer.
// Reads go into the loop's buffer; only a question cut across reads, or
// answers the kernel would not take at once, get a buffer of their own,
// from a pool, given back as soon as it empties.
//
// Timeouts need no timer per connection: a connection is in exactly one
// state (idle, in a question, waiting to write, waiting out answer_delay,
// lingering after its FIN), every state has one timeout for all its
// connections, so each state keeps its connections in a list ordered by
// when they entered it, and only the list heads are checked.

// elState is the state of an event-loop connection.
type elState uint8

const (
	stIdle     elState = iota // between questions
	stQuestion                // a question has begun
	stWriting                 // answers wait for the client to read
	stDelayed                 // an answer waits out answer_delay
	stLinger                  // FIN sent at shutdown, discarding input
	nStates
)

// readBuf is a loop's read buffer.
const readBuf = 16 << 10

// elConn is one connection of a loop.
type elConn struct {
	fd         int32
	state      elState
	in, out    bool  // registered for EPOLLIN, EPOLLOUT
	proxy      uint8 // proxyAwait or proxyCheck until the first bytes are seen
	counted    bool  // counted in the per-source limits
	eof        bool  // the client half-closed: answer what it asked, then close
	prev, next *elConn
	since      int64 // ns: when it entered its state (or last activity when idle)
	pending    []byte
	unsent     []byte
	delayed    []byte // the answer waiting out answer_delay
	peer       netip.AddrPort
}

// PROXY protocol states of a connection.
const (
	proxyAwait uint8 = 1 // a trusted proxy: a header may name the client
	proxyCheck uint8 = 2 // any other peer: a header is refused
)

// elList is an intrusive list of connections ordered by since.
type elList struct{ head, tail *elConn }

func (l *elList) push(c *elConn) {
	c.prev, c.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = c
	} else {
		l.head = c
	}
	l.tail = c
}

func (l *elList) remove(c *elConn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// elListener is a listening socket served by every loop.
type elListener struct {
	ln   net.Listener
	fd   int
	acks int
	done chan struct{}
}

// elGroup is the server's set of loops.
type elGroup struct {
	loops []*loop
	mu    sync.Mutex
	lns   map[net.Listener]*elListener
	wg    sync.WaitGroup
}

// loop is one event loop: an epoll instance and a goroutine locked to a
// thread.
type loop struct {
	s     *Server
	epfd  int
	evfd  int
	conns []*elConn // by fd
	lists [nStates]elList
	open  int
	rbuf  []byte
	wbuf  []byte
	start time.Time

	mu        sync.Mutex // guards ops, exited and fdsClosed
	ops       []func()
	exited    bool                // the loop's goroutine has returned: do runs ops itself
	fdsClosed bool                // the group closed epfd and evfd: wake does nothing
	after     sync.Mutex          // serialises the ops do runs after the loop exited
	gone      bool                // set by the loop before it exits: no epoll calls after
	lfds      map[int]*elListener // listeners registered here
	paused    map[int]bool        // listeners taken out of epoll (full, or accept errors)
	resume    int64               // ns: when paused listeners go back
	backoff   time.Duration       // accept error backoff
	full      bool                // paused because max_connections is reached

	draining bool
	killed   bool
}

// startLoops starts the server's loops once.
func (s *Server) startLoops() error {
	s.elOnce.Do(func() {
		n := s.workers
		if n <= 0 {
			n = runtime.GOMAXPROCS(0)
		}
		g := &elGroup{lns: map[net.Listener]*elListener{}}
		for i := 0; i < n; i++ {
			l, err := newLoop(s)
			if err != nil {
				s.elErr = err
				for _, l := range g.loops {
					unix.Close(l.epfd)
					unix.Close(l.evfd)
				}
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
	return &loop{s: s, epfd: epfd, evfd: evfd, rbuf: make([]byte, readBuf), start: time.Now(),
		lfds: map[int]*elListener{}, paused: map[int]bool{}}, nil
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

// do runs f on the loop's goroutine or, once the loop has exited, on the
// caller's (one at a time): an operation queued as the loop exits still
// runs, so a Serve waiting for its listener to be taken in (or dropped)
// is always answered.
func (l *loop) do(f func()) {
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

// exit ends the loop: no epoll calls from here on; operations queued until
// now run here, later ones in do.
func (l *loop) exit() {
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
func (l *loop) wake() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fdsClosed {
		return
	}
	var one = [8]byte{1}
	unix.Write(l.evfd, one[:])
}

// closeFDs closes every loop's epoll and event descriptors, once all the
// loops have returned: the group is their one owner.
func (g *elGroup) closeFDs() {
	for _, l := range g.loops {
		l.mu.Lock()
		if !l.fdsClosed {
			l.fdsClosed = true
			unix.Close(l.epfd)
			unix.Close(l.evfd)
		}
		l.mu.Unlock()
	}
}

func (l *loop) now() int64 { return int64(time.Since(l.start)) }

func (l *loop) addListener(el *elListener) {
	l.lfds[el.fd] = el
	if l.draining {
		l.dropListener(el)
		return
	}
	l.epollListener(el.fd, true)
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

func (l *loop) dropListener(el *elListener) {
	if _, ok := l.lfds[el.fd]; !ok {
		return
	}
	if !l.paused[el.fd] {
		l.epollListener(el.fd, false)
	}
	delete(l.lfds, el.fd)
	delete(l.paused, el.fd)
	g := l.s.el.Load()
	g.mu.Lock()
	el.acks++
	last := el.acks == len(g.loops)
	g.mu.Unlock()
	if last {
		unix.Close(el.fd)
		close(el.done)
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
				l.accept(fd, st)
			default:
				if fd < len(l.conns) && l.conns[fd] != nil {
					l.event(l.conns[fd], ev.Events, st)
				}
			}
		}
		l.expire(st)
	}
}

func (l *loop) runOps() {
	l.mu.Lock()
	ops := l.ops
	l.ops = nil
	l.mu.Unlock()
	for _, f := range ops {
		f()
	}
}

// waitMs is how long epoll_wait may sleep: until the earliest timeout.
func (l *loop) waitMs() int {
	st := l.s.settings.Load()
	next := int64(-1)
	consider := func(t int64) {
		if next < 0 || t < next {
			next = t
		}
	}
	lim := st.Limits
	if h := l.lists[stIdle].head; h != nil {
		if l.draining {
			consider(h.since + int64(drainPoll))
		} else if lim.IdleTimeout > 0 {
			consider(h.since + int64(lim.IdleTimeout))
		}
	}
	if h := l.lists[stQuestion].head; h != nil {
		if lim.QuestionTimeout > 0 {
			consider(h.since + int64(lim.QuestionTimeout))
		}
		if l.draining {
			consider(l.drainEnd())
		}
	}
	if h := l.lists[stWriting].head; h != nil && lim.WriteTimeout > 0 {
		consider(h.since + int64(lim.WriteTimeout))
	}
	if h := l.lists[stDelayed].head; h != nil {
		consider(h.since)
	}
	if h := l.lists[stLinger].head; h != nil {
		consider(h.since)
	}
	if len(l.paused) > 0 {
		if l.full {
			consider(l.now() + int64(20*time.Millisecond)) // another loop may free a slot
		} else {
			consider(l.resume)
		}
	}
	if l.draining {
		consider(l.now() + int64(50*time.Millisecond)) // watch for the kill
	}
	if next < 0 {
		return -1
	}
	d := next - l.now()
	if d <= 0 {
		return 0
	}
	ms := int((d + int64(time.Millisecond) - 1) / int64(time.Millisecond))
	return min(ms, 1000)
}

func (l *loop) drainEnd() int64 {
	if l.s.drainEnd.IsZero() {
		return l.now() + int64(time.Hour)
	}
	return int64(l.s.drainEnd.Sub(l.start))
}

// accept takes the connections waiting on listener fd.
func (l *loop) accept(lfd int, st *Settings) {
	for i := 0; i < 64; i++ {
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

func (l *loop) add(fd int, sa unix.Sockaddr, st *Settings) {
	c := &elConn{fd: int32(fd), in: true, peer: addrPort(sa)}
	if st.Proxy.Enabled && st.Proxy.trusts(c.peer.Addr()) {
		c.proxy = proxyAwait // admitted once the header names the client
	} else {
		// Decided before a byte is read.
		why, counted := l.s.admit(c.peer, st)
		if why != "" {
			l.s.refuse(c.peer, why)
			unix.Close(fd)
			l.s.open.Add(-1)
			l.s.done.Add(1)
			return
		}
		c.counted = counted
		if st.Proxy.Enabled {
			c.proxy = proxyCheck
		}
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if b := st.Limits.SendBuffer; b > 0 {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, b)
	}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLRDHUP, Fd: int32(fd)}); err != nil {
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
	c.since = l.now()
	l.lists[stIdle].push(c)
	if c.proxy == proxyAwait {
		l.setState(c, stQuestion) // the header must come within question_timeout
	} else if l.s.log.Enabled(context.Background(), slog.LevelInfo) {
		l.s.log.Info("accepted", "client", c.peer.String())
	}
}

func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	case *unix.SockaddrInet6:
		ip := netip.AddrFrom16(a.Addr)
		if a.ZoneId != 0 {
			ip = ip.WithZone(strconv.Itoa(int(a.ZoneId)))
		}
		return netip.AddrPortFrom(ip, uint16(a.Port))
	}
	return netip.AddrPort{}
}

// setState moves c to the tail of state's list.
func (l *loop) setState(c *elConn, s elState) {
	l.lists[c.state].remove(c)
	c.state = s
	c.since = l.now()
	l.lists[s].push(c)
}

// event handles epoll events of c.
func (l *loop) event(c *elConn, evs uint32, st *Settings) {
	if evs&unix.EPOLLOUT != 0 && len(c.unsent) > 0 {
		if !l.flush(c, st) {
			return
		}
	}
	switch {
	case evs&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 && c.in:
		l.read(c, st)
	case evs&(unix.EPOLLHUP|unix.EPOLLERR) != 0 && c.fd >= 0:
		// Not reading (answers pending or delayed), and the connection
		// is gone both ways: they cannot be delivered.
		l.close(c, endError, "connection reset by peer")
	}
}

func (l *loop) read(c *elConn, st *Settings) {
	n, err := rawRead(int(c.fd), l.rbuf)
	if c.state == stLinger {
		if n <= 0 && err != unix.EAGAIN {
			l.close(c, endDrained, "")
		}
		return
	}
	switch {
	case n > 0:
		l.input(c, l.rbuf[:n], st)
	case n == 0:
		l.peerClosed(c)
	case err == unix.EAGAIN || err == unix.EINTR:
	default:
		detail := err.Error()
		if len(c.pending) > 0 {
			detail += " after " + quote(c.pending)
		}
		l.close(c, endError, detail)
	}
}

// input frames data (after what c has pending) and answers it.
func (l *loop) input(c *elConn, data []byte, st *Settings) {
	if c.proxy != 0 {
		l.proxyInput(c, data, st)
		return
	}
	lim := st.Limits
	if len(c.pending) > 0 {
		if bytes.IndexByte(data, '?') < 0 && c.state == stQuestion {
			c.pending = append(c.pending, data...)
			if lim.MaxQuestionBytes > 0 && len(c.pending) >= lim.MaxQuestionBytes {
				l.close(c, endTooLong, strconv.Itoa(lim.MaxQuestionBytes))
			}
			return
		}
		c.pending = append(c.pending, data...)
		data = c.pending
		if c.state == stDelayed || c.state == stLinger {
			return
		}
	} else if c.state == stIdle {
		l.setState(c, stIdle) // activity: back to the idle list's tail
	}
	fresh := c.state != stQuestion
	l.wbuf = l.wbuf[:0]
	readAt, answered := time.Now(), 0
	for {
		start, end, err := Split(data, lim.MaxQuestionBytes)
		if err != nil {
			l.write(c, l.wbuf, st)
			if c.fd >= 0 {
				l.close(c, endTooLong, strconv.Itoa(lim.MaxQuestionBytes))
			}
			return
		}
		if end < 0 {
			if len(data) > 0 && start == len(data) {
				// Only whitespace: it starts the question timeout as any
				// byte does, and more of it does not restart it.
				if c.pending != nil {
					putBuf(c.pending)
					c.pending = nil
				}
				if c.state == stIdle {
					l.setState(c, stQuestion)
				}
				break
			}
			l.keep(c, data[start:], fresh, false)
			break
		}
		ans := st.Answers.Answer(data[start:end])
		data = data[end:]
		if st.AnswerDelay > 0 {
			l.keep(c, data, true, true)
			c.delayed = ans
			c.in = l.setIn(c, false)
			l.setState(c, stDelayed)
			c.since += int64(st.AnswerDelay)
			break
		}
		l.wbuf = append(l.wbuf, ans...)
		answered++
		fresh = true
		if len(l.wbuf) >= batchOut && len(data) > 0 {
			l.keep(c, data, true, true) // the rest waits until the answers are taken
			break
		}
	}
	if len(l.wbuf) > 0 {
		l.write(c, l.wbuf, st)
		l.s.latency.observe(time.Since(readAt), answered)
	}
}

// keep stores rest as c's pending input. backlog means rest may hold whole
// questions still to answer (not only the start of one).
func (l *loop) keep(c *elConn, rest []byte, fresh, backlog bool) {
	if len(rest) == 0 {
		if c.pending != nil {
			putBuf(c.pending)
			c.pending = nil
		}
		if c.state == stQuestion && len(c.unsent) == 0 {
			l.setState(c, stIdle)
		}
		return
	}
	if c.pending == nil {
		c.pending = getBuf()
	}
	c.pending = append(c.pending[:0], rest...) // copy handles the overlap
	switch {
	case len(c.unsent) > 0:
		// Waiting for the client to read: the write timeout applies.
	case backlog && c.state == stQuestion:
		l.setState(c, stIdle) // whole questions wait: not a slow question
	case !backlog && (fresh || c.state != stQuestion):
		l.setState(c, stQuestion)
	}
	if backlog && c.in {
		// Whole questions wait for their answers to be taken: read no
		// more until they are, so what is kept stays one read's worth.
		c.in = l.setIn(c, false)
	}
}

// backlogged reports whether c keeps whole questions not yet answered.
func backlogged(c *elConn) bool { return bytes.IndexByte(c.pending, '?') >= 0 }

// wantIn reports whether c should be read: not after the client's FIN,
// not while an answer waits out answer_delay, whole questions wait, or
// too many answers are queued.
func wantIn(c *elConn) bool {
	return !c.eof && c.delayed == nil && len(c.unsent) <= maxOut && !backlogged(c)
}

// peerClosed handles the client's FIN: the questions it asked before it
// are answered first; the conversation ends when they are delivered.
func (l *loop) peerClosed(c *elConn) {
	c.eof = true
	if c.in {
		c.in = l.setIn(c, false)
	}
	l.endIfDone(c)
}

// endIfDone closes c after the client's FIN once nothing it asked is
// left to answer or deliver.
func (l *loop) endIfDone(c *elConn) {
	if !c.eof || c.fd < 0 || len(c.unsent) > 0 || c.delayed != nil || backlogged(c) {
		return
	}
	if len(c.pending) > 0 {
		l.close(c, endIncomplete, quote(c.pending))
		return
	}
	l.close(c, endEOF, "")
}

// write sends data (after what is already queued); what the kernel does
// not take is queued, and reading stops above maxOut.
func (l *loop) write(c *elConn, data []byte, st *Settings) {
	if c.fd < 0 || len(data) == 0 {
		return
	}
	if len(c.unsent) == 0 {
		n, err := rawWrite(int(c.fd), data)
		if n == len(data) {
			l.afterWrite(c, st)
			return
		}
		if err != nil && err != unix.EAGAIN && err != unix.EINTR {
			l.close(c, endError, err.Error())
			return
		}
		n = max(n, 0)
		c.unsent = append(getBuf(), data[n:]...)
		l.setOut(c, true)
		l.setState(c, stWriting)
	} else {
		c.unsent = append(c.unsent, data...)
	}
	if len(c.unsent) > maxOut {
		c.in = l.setIn(c, false)
	}
}

// flush writes queued answers; false means c was closed.
func (l *loop) flush(c *elConn, st *Settings) bool {
	n, err := rawWrite(int(c.fd), c.unsent)
	if err != nil && err != unix.EAGAIN && err != unix.EINTR {
		l.close(c, endError, err.Error())
		return false
	}
	if n <= 0 {
		return true
	}
	c.unsent = c.unsent[:copy(c.unsent, c.unsent[n:])]
	if len(c.unsent) > 0 {
		l.setState(c, stWriting) // progress: the write timeout starts again
		if !c.in && wantIn(c) {
			c.in = l.setIn(c, true)
		}
		return true
	}
	putBuf(c.unsent)
	c.unsent = nil
	l.setOut(c, false)
	l.afterWrite(c, st)
	return c.fd >= 0
}

// afterWrite continues once every answer is taken: with input kept back,
// or back to reading.
func (l *loop) afterWrite(c *elConn, st *Settings) {
	if c.delayed != nil {
		return
	}
	if len(c.pending) > 0 && c.state != stQuestion {
		data := c.pending
		c.pending = nil
		l.setState(c, stIdle)
		l.input(c, data, st)
		putBuf(data)
		if c.fd >= 0 && !c.in && wantIn(c) {
			c.in = l.setIn(c, true)
		}
		if c.fd >= 0 && len(c.unsent) == 0 {
			l.endIfDone(c)
		}
		return
	}
	if !c.in && wantIn(c) {
		c.in = l.setIn(c, true)
	}
	if c.state == stWriting {
		if len(c.pending) > 0 {
			l.setState(c, stQuestion)
		} else {
			l.setState(c, stIdle)
		}
	}
	l.endIfDone(c)
}

func (l *loop) setIn(c *elConn, on bool) bool {
	l.ctl(c, on, c.out)
	return on
}

func (l *loop) setOut(c *elConn, on bool) {
	c.out = on
	l.ctl(c, c.in, on)
}

func (l *loop) ctl(c *elConn, in, out bool) {
	var ev uint32
	if in {
		ev |= unix.EPOLLIN | unix.EPOLLRDHUP
	}
	if out {
		ev |= unix.EPOLLOUT
	}
	rawEpollCtl(l.epfd, unix.EPOLL_CTL_MOD, int(c.fd), &unix.EpollEvent{Events: ev, Fd: c.fd})
}

// expire handles every timeout that is due.
func (l *loop) expire(st *Settings) {
	now := l.now()
	lim := st.Limits
	for c := l.lists[stDelayed].head; c != nil && c.since <= now; c = l.lists[stDelayed].head {
		// The answer is due. What c sent after the question stays pending:
		// afterWrite goes on with it once the answer is taken.
		ans := c.delayed
		c.delayed = nil
		l.setState(c, stIdle)
		l.write(c, ans, st)
		l.s.latency.observe(st.AnswerDelay, 1)
	}
	if l.draining {
		for c := l.lists[stIdle].head; c != nil && c.since+int64(drainPoll) <= now; c = l.lists[stIdle].head {
			if len(c.pending) == 0 && len(c.unsent) == 0 {
				l.linger(c) // quiet at a question boundary: done
			} else {
				l.setState(c, stIdle) // questions still queued: look again later
			}
		}
	} else if lim.IdleTimeout > 0 {
		for c := l.lists[stIdle].head; c != nil && c.since+int64(lim.IdleTimeout) <= now; c = l.lists[stIdle].head {
			l.close(c, endIdle, "")
		}
	}
	for c := l.lists[stQuestion].head; c != nil; c = l.lists[stQuestion].head {
		if lim.QuestionTimeout > 0 && c.since+int64(lim.QuestionTimeout) <= now {
			l.close(c, endQuestionTimeout, quote(c.pending))
		} else if l.draining && l.drainEnd() <= now {
			l.close(c, endCut, quote(c.pending))
		} else {
			break
		}
	}
	if lim.WriteTimeout > 0 {
		for c := l.lists[stWriting].head; c != nil && c.since+int64(lim.WriteTimeout) <= now; c = l.lists[stWriting].head {
			l.close(c, endWriteTimeout, "")
		}
	}
	for c := l.lists[stLinger].head; c != nil && c.since <= now; c = l.lists[stLinger].head {
		l.close(c, endDrained, "")
	}
	l.resumeListeners(st)
}

// beginDrain: stop accepting, answer what has arrived, close idle
// connections at their question boundary.
func (l *loop) beginDrain() {
	st := l.s.settings.Load()
	for fd, el := range l.lfds {
		// Out of epoll first, then take what is already queued: with
		// EPOLLEXCLUSIVE the kernel may have woken this loop alone for
		// those connections, and another process sharing the socket (the
		// new daemon of an upgrade) would not be woken for them.
		if !l.paused[fd] {
			l.epollListener(fd, false)
			l.paused[fd] = true
		}
		l.accept(fd, st)
		l.dropListener(el)
	}
	l.draining = true
	// Idle connections are closed once quiet for drainPoll (expire).
}

// linger sends FIN and discards input until the client closes or a short
// time passes, so unread bytes do not make the kernel reset the
// connection and destroy answers in flight.
func (l *loop) linger(c *elConn) {
	if err := unix.Shutdown(int(c.fd), unix.SHUT_WR); err != nil {
		l.close(c, endDrained, "")
		return
	}
	l.setState(c, stLinger)
	c.since = min(l.now()+int64(lingerMax), l.drainEnd())
	if !c.in {
		c.in = l.setIn(c, true)
	}
}

// kill closes every connection at once: the drain deadline ended.
func (l *loop) kill() {
	l.killed = true
	for s := elState(0); s < nStates; s++ {
		for c := l.lists[s].head; c != nil; c = l.lists[s].head {
			if s == stLinger {
				l.close(c, endDrained, "")
			} else {
				l.close(c, endCut, quote(c.pending))
			}
		}
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
	l.lists[c.state].remove(c)
	c.fd = -1
	putBuf(c.pending)
	putBuf(c.unsent)
	c.pending, c.unsent, c.delayed = nil, nil, nil
	l.open--
	l.s.open.Add(-1)
	l.s.done.Add(1)
	if c.counted {
		l.s.srcs.release(c.peer.Addr())
	}
	if how == endCut {
		l.s.cutCount.Add(1)
	}
	if how != endRefused && l.s.log.Enabled(context.Background(), endLevel(how)) {
		logEnd(l.s.log.With("client", c.peer.String()), how, detail)
	}
	if l.full {
		l.resumeListeners(l.s.settings.Load())
	}
}

// proxyInput handles the first bytes of a connection while the PROXY
// protocol is on: a header from a trusted proxy names the client (who is
// then admitted), a header from anyone else is refused.
func (l *loop) proxyInput(c *elConn, data []byte, st *Settings) {
	if c.pending == nil {
		c.pending = getBuf()
	}
	c.pending = append(c.pending, data...)
	n, more, err := splitProxyHeader(c.pending)
	switch {
	case err != nil:
		l.refuseConn(c, err.Error())
		return
	case more:
		if c.state != stQuestion {
			l.setState(c, stQuestion)
		}
		return
	case n > 0 && c.proxy == proxyCheck:
		l.refuseConn(c, ErrProxyHeader.Error()+": from "+c.peer.Addr().String()+", which is not in server.proxy_trusted")
		return
	}
	if c.proxy == proxyAwait {
		peer := c.peer
		if n > 0 {
			client, err := parseProxyHeader(c.pending[:n], peer)
			if err != nil {
				l.refuseConn(c, err.Error())
				return
			}
			c.peer = client
		}
		why, counted := l.s.admit(c.peer, st)
		if why != "" {
			l.refuseConn(c, why+" (via "+peer.String()+")")
			return
		}
		c.counted = counted
		if l.s.log.Enabled(context.Background(), slog.LevelInfo) {
			l.s.log.Info("accepted", "client", c.peer.String(), "via", peer.String())
		}
	}
	c.proxy = 0
	buf := c.pending
	c.pending = nil
	l.setState(c, stIdle)
	if rest := buf[n:]; len(rest) > 0 {
		l.input(c, rest, st)
	}
	putBuf(buf)
}

// refuseConn closes a connection that is not to be served, logging the
// refusal (rate-limited) instead of a conversation's end.
func (l *loop) refuseConn(c *elConn, why string) {
	l.s.refuse(c.peer, why)
	l.close(c, endRefused, "")
}
