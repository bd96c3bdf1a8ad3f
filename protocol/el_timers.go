//go:build linux

package protocol

// The event loop's timers: a session's next timeout depends only on its
// phase and when it entered it (Session.Phase), and within a phase the
// timeout is the same for every session, so each loop keeps one list per
// phase ordered by that time, and only the heads are checked. Lingering
// connections (ended, FIN sent) have a list of their own, ordered by the
// linger's end. Then the drain, and the kill at its deadline.

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
func (l *loop) move(c *elConn, p phase, since int64) {
	l.lists[c.list].remove(c)
	c.list, c.since = p, since
	l.lists[p].insert(c)
}

// expire handles every timeout that is due.
func (l *loop) expire(st *Settings) {
	now := l.now()
	for p := phIdle; p < phEnded; p++ {
		for c := l.lists[p].head; c != nil; c = l.lists[p].head {
			if dl := c.ss.Deadline(st.Limits); dl == 0 || dl > now {
				break
			}
			c.ss.Tick(now, st)
			l.sync(c, st, false)
			if l.lists[p].head == c {
				break // not moved: a later pass looks again
			}
		}
	}
	for c := l.lists[phEnded].head; c != nil && c.since <= now; c = l.lists[phEnded].head {
		l.close(c, endDrained, "")
	}
	l.resumeListeners(st)
}

// next returns when the earliest timeout of the loop's connections is
// due (-1: none).
func (l *loop) next(lim Limits) int64 {
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
	var all []*elConn
	for p := phIdle; p < phEnded; p++ {
		for c := l.lists[p].head; c != nil; c = c.next {
			all = append(all, c)
		}
	}
	st := l.s.settings.Load()
	for _, c := range all {
		c.ss.Drain() // may end a whitespace-only question: a boundary
		l.sync(c, st, false)
	}
}

// kill closes every connection at once: the drain deadline ended.
func (l *loop) kill() {
	l.killed = true
	for p := phase(0); p < nPhases; p++ {
		for c := l.lists[p].head; c != nil; c = l.lists[p].head {
			if p == phEnded {
				l.close(c, endDrained, "")
				continue
			}
			c.ss.Kill()
			how, detail, _ := c.ss.Ending()
			l.close(c, how, detail)
		}
	}
}
