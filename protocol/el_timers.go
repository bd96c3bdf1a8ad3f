//go:build linux

package protocol

import "time"

// The event loop's timers: a session's next timeout depends only on its
// phase and when it entered it (Session.Phase), and within a phase the
// timeout is the same for every session, so each loop keeps one list per
// phase ordered by that time, and only the heads are checked. Lingering
// connections (ended, FIN sent) have a list of their own, ordered by the
// linger's end. Then the drain, and the kill at its deadline.

// connLoop is what the timer lists need of a loop that owns them: the
// eventloop and uring engines both drive their sessions through it.
type connLoop interface {
	now() int64
	// sync brings c in step with its session after a change.
	sync(c *elConn, st *Settings, writable bool)
	// close closes c and logs how its conversation ended.
	close(c *elConn, how ending, detail string)
	// linger sends FIN after a drained conversation and reads until the
	// client's FIN or a short time.
	linger(c *elConn)
}

// timers are a loop's connections by phase: one list per phase, ordered
// by when each connection entered it; phEnded holds the lingering ones.
type timers struct {
	lists [nPhases]elList
}

// elList is an intrusive list of connections ordered by since.
type elList struct{ head, tail *elConn }

// insert puts c in order of since; a connection usually enters a list
// at its tail, so the walk back is short.
func (l *elList) insert(c *elConn) {
	at := l.tail
	for at != nil && at.since > c.since {
		at = at.prev
	}
	c.prev = at
	if at == nil {
		c.next = l.head
		l.head = c
	} else {
		c.next = at.next
		at.next = c
	}
	if c.next != nil {
		c.next.prev = c
	} else {
		l.tail = c
	}
}

func (l *elList) remove(c *elConn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if l.head == c {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else if l.tail == c {
		l.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

// move puts c in list p at since.
func (l *timers) move(c *elConn, p phase, since int64) {
	l.lists[c.list].remove(c)
	c.list, c.since = p, since
	l.lists[p].insert(c)
}

// expire handles every timeout of cl's connections that is due.
func (l *timers) expire(cl connLoop, st *Settings) {
	now := cl.now()
	for p := phIdle; p < phEnded; p++ {
		for c := l.lists[p].head; c != nil; c = l.lists[p].head {
			if dl := c.ss.Deadline(st.Limits); dl == 0 || dl > now {
				break
			}
			c.ss.Tick(now, st)
			cl.sync(c, st, false)
			if l.lists[p].head == c {
				break // not moved: a later pass looks again
			}
		}
	}
	for c := l.lists[phEnded].head; c != nil && c.since <= now; c = l.lists[phEnded].head {
		cl.close(c, endDrained, "")
	}
}

// waitMs is how long a loop may sleep, in milliseconds (-1: until an
// event): until its earliest timeout, or sooner while its accepting is
// paused (full: another loop may free a slot; else until resume, the end
// of an accept backoff) or while it drains (to watch for the kill).
func (l *timers) waitMs(lim Limits, now int64, paused, full bool, resume int64, draining bool) int {
	next := l.next(lim)
	consider := func(t int64) {
		if next < 0 || t < next {
			next = t
		}
	}
	if paused {
		if full {
			consider(now + int64(20*time.Millisecond))
		} else {
			consider(resume)
		}
	}
	if draining {
		consider(now + int64(50*time.Millisecond))
	}
	if next < 0 {
		return -1
	}
	d := next - now
	if d <= 0 {
		return 0
	}
	ms := int((d + int64(time.Millisecond) - 1) / int64(time.Millisecond))
	return min(ms, 1000)
}

// finish ends c's conversation on cl when its session has ended: a
// drained one lingers, any other closes. It reports whether it did.
func finish(cl connLoop, c *elConn) bool {
	how, detail, done := c.ss.Ending()
	if !done {
		return false
	}
	if how == endDrained {
		cl.linger(c)
	} else {
		cl.close(c, how, detail)
	}
	return true
}

// next returns when the earliest timeout of the loop's connections is
// due (-1: none).
func (l *timers) next(lim Limits) int64 {
	next := int64(-1)
	for p := phIdle; p < phEnded; p++ {
		if h := l.lists[p].head; h != nil {
			if dl := h.ss.Deadline(lim); dl != 0 && (next < 0 || dl < next) {
				next = dl
			}
		}
	}
	if h := l.lists[phEnded].head; h != nil && (next < 0 || h.since < next) {
		next = h.since
	}
	return next
}

// beginDrain: stop accepting, answer what has arrived, end each
// conversation at its question boundary.
func (l *loop) beginDrain() {
	for fd, el := range l.lfds {
		// Out of epoll first, then take what is already queued: with
		// EPOLLEXCLUSIVE the kernel may have woken this loop alone for
		// those connections, and another process sharing the socket (the
		// new daemon of an upgrade) would not be woken for them.
		if !l.paused[fd] {
			l.epollListener(fd, false)
			l.paused[fd] = true
		}
		l.accept(fd)
		l.dropListener(el)
	}
	l.draining = true
	l.drainAll(l)
}

// drainAll drains every conversation of cl: each ends at its question
// boundary (or at once, when it is at one).
func (l *timers) drainAll(cl connLoop) {
	var all []*elConn
	for p := phIdle; p < phEnded; p++ {
		for c := l.lists[p].head; c != nil; c = c.next {
			all = append(all, c)
		}
	}
	for _, c := range all {
		c.ss.Drain() // may end a whitespace-only question: a boundary
		cl.sync(c, c.ss.srv.settings.Load(), false)
	}
}

// killAll closes every connection of cl at once: the drain deadline
// ended.
func (l *timers) killAll(cl connLoop) {
	for p := phase(0); p < nPhases; p++ {
		for c := l.lists[p].head; c != nil; c = l.lists[p].head {
			if p == phEnded {
				cl.close(c, endDrained, "")
				continue
			}
			c.ss.Kill()
			how, detail, _ := c.ss.Ending()
			cl.close(c, how, detail)
		}
	}
}

// kill closes every connection at once: the drain deadline ended.
func (l *loop) kill() {
	l.killed = true
	l.killAll(l)
}
