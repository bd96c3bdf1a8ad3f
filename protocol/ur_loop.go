//go:build linux

package protocol

// The uring engine: the event loop's design (one loop per worker, each
// owning its connections, sessions driven through the same timer lists)
// with io_uring in place of epoll. A loop asks for work instead of
// readiness: an accept per listener, a multishot receive per connection
// into the ring's provided buffers while its session wants to read, and
// one send per connection at a time. Every request it prepares goes to the kernel with
// the wait for the next completions, in one io_uring_enter: with many
// connections, one system call serves many answers.
//
// The files, as for the eventloop engine: ur_loop.go a loop (its ring,
// its sleep, its completions), ur_ring.go the ring and its buffers,
// ur_acceptor.go listeners and admission, ur_conn.go a connection's
// receives and sends. Timeouts, the drain and the kill are el_timers.go's.

import (
	"runtime"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// urConn is the uring engine's part of a connection: 24 bytes while it
// is idle; what a send or held input needs is borrowed (urIO) only then.
type urConn struct {
	slot, gen uint32
	recv      bool  // a multishot receive is armed
	cancelled bool  // ... and its cancellation is queued
	sending   bool  // a send is in flight, of io.sbuf
	heldEnd   bool  // io.held is followed by the client's FIN (io.heldErr nil) or an error
	closed    bool  // the socket is closed: the slot waits for its requests
	io        *urIO // while sending or holding input
}

// urIO is what a connection borrows from its loop while a send is in
// flight or input is held.
type urIO struct {
	sbuf    []byte // what is being sent: a copy of Output's head
	held    []byte // bytes that arrived after reading stopped
	heldErr error
}

// maxSpareIO bounds the urIO a loop keeps for reuse.
const maxSpareIO = 1024

// uloop is one loop of the uring engine.
type uloop struct {
	loopCtl
	s *Server
	r *urRing
	timers
	conns []*elConn // by slot
	free  []uint32  // slots to reuse
	gen   uint32
	open  int
	wake8 [8]byte // the eventfd's counter, read when it fires

	lfds    map[int]*elListener // listeners served here
	armed   map[int]uint8       // listeners with an accept (urAccept) or its readiness poll (urAcceptPoll) in flight
	paused  bool                // accepts cancelled: max_connections, or a backoff
	full    bool                // paused because max_connections is reached
	resume  int64               // ns: when a backoff ends
	backoff time.Duration
	wakeOn  bool // the eventfd's multishot poll is armed
	// io_uring_enter failing: the retry's backoff, and whether its
	// ceiling was logged.
	enterBackoff time.Duration
	enterSaid    bool
	spareIO      []*urIO

	draining bool
	killed   bool
}

func newULoop(s *Server) (*uloop, error) {
	r, err := newURing()
	if err != nil {
		return nil, err
	}
	evfd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		r.close()
		return nil, err
	}
	return &uloop{loopCtl: loopCtl{evfd: evfd}, s: s, r: r,
		lfds: map[int]*elListener{}, armed: map[int]uint8{}}, nil
}

func (l *uloop) now() int64 { return mono() }

// closeFDs releases the ring and the eventfd; the group calls it once
// every loop has returned.
func (l *uloop) closeFDs() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.fdsClosed {
		l.fdsClosed = true
		l.r.close()
		unix.Close(l.evfd)
	}
}

// armWake asks for a completion whenever the eventfd is written.
func (l *uloop) armWake() {
	e := l.r.sqe()
	e.opcode = iorOpPollAdd
	e.fd = int32(l.evfd)
	e.opFlags = unix.POLLIN
	e.len = iorPollAddMulti
	e.userData = urData(urWake, 0, 0)
	l.wakeOn = true
}

// run is the loop.
func (l *uloop) run() {
	runtime.LockOSThread()
	l.armWake()
	for {
		l.runOps()
		if l.s.draining.Load() && !l.draining {
			l.beginDrain()
		}
		if l.s.killed() && !l.killed {
			l.kill()
		}
		// Past the kill, what the kernel still holds (a cancelled accept,
		// a receive) goes with the ring when the group closes it.
		if l.draining && l.open == 0 && len(l.lfds) == 0 && (l.killed || len(l.armed) == 0 && l.slotsBusy() == 0) {
			l.exit()
			return
		}
		if !l.wakeOn {
			l.armWake()
		}
		// Submit what the last round prepared and wait for the next
		// completions, in one system call.
		timeout := int64(-1)
		if ms := l.waitMs(); ms >= 0 {
			timeout = int64(ms) * int64(time.Millisecond)
		}
		if err := l.r.ring.submitAndWait(timeout); err != nil && err != syscall.ETIME && err != syscall.EINTR && err != syscall.EAGAIN && err != syscall.EBUSY {
			// Not expected once the probe passed; never a busy loop: the
			// retries back off to a second, and say so once per step.
			if l.enterBackoff == 0 {
				l.enterBackoff = 10 * time.Millisecond
			} else if l.enterBackoff *= 2; l.enterBackoff > time.Second {
				l.enterBackoff = time.Second
			}
			if l.enterBackoff < time.Second || !l.enterSaid {
				l.enterSaid = l.enterBackoff == time.Second
				l.s.log.Error("io_uring_enter failed", "err", err.Error(), "retry_in", l.enterBackoff.String())
			}
			time.Sleep(l.enterBackoff)
		} else {
			l.enterBackoff, l.enterSaid = 0, false
		}
		st := l.s.settings.Load()
		l.r.ring.completions(func(d uint64, res int32, flags uint32) { l.complete(d, res, flags, st) })
		l.expire(l, st)
		l.resumeListeners(st)
	}
}

// complete handles one completion.
func (l *uloop) complete(data uint64, res int32, flags uint32, st *Settings) {
	op, slot, gen := urUnpack(data)
	switch op {
	case urWake:
		rawRead(l.evfd, l.wake8[:])
		if flags&urMore == 0 {
			l.wakeOn = false
		}
	case urAccept:
		l.accepted(int(slot), res, st)
	case urAcceptPoll:
		l.acceptReady(int(slot), res)
	case urRecv, urSend:
		if int(slot) >= len(l.conns) || l.conns[slot] == nil || l.conns[slot].ur.gen != gen {
			if op == urRecv && flags&urBuffer != 0 {
				l.r.recycle(uint16(flags >> urBufShift))
			}
			return
		}
		c := l.conns[slot]
		if op == urRecv {
			l.received(c, res, flags, st)
		} else {
			l.sent(c, res, st)
		}
	}
}

// waitMs is how long the loop may sleep in io_uring_enter.
func (l *uloop) waitMs() int {
	return l.timers.waitMs(l.s.settings.Load().Limits, l.now(), l.paused, l.full, l.resume, l.draining)
}

// beginDrain: stop accepting, answer what has arrived, end each
// conversation at its question boundary.
func (l *uloop) beginDrain() {
	for _, el := range l.lfds {
		l.disarm(el.fd)
		// What the kernel has queued on the listener is this loop's to
		// serve, as the eventloop engine does.
		l.acceptNow(el.fd)
		l.dropListener(el)
	}
	l.draining = true
	l.drainAll(l)
}

// kill closes every connection at once: the drain deadline ended.
func (l *uloop) kill() {
	l.killed = true
	l.killAll(l)
}
