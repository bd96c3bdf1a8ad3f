//go:build linux

package protocol

// The event loop's timers: each connection is in one state, every state
// has one timeout for all its connections, so each keeps its connections
// in a list ordered by when they entered it, and only the heads are
// checked; the drain and the kill at its deadline.

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

// setState moves c to the tail of state's list.
func (l *loop) setState(c *elConn, s elState) {
	l.lists[c.state].remove(c)
	c.state = s
	c.since = l.now()
	l.lists[s].push(c)
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
	// Idle connections are closed once quiet for drainPoll (expire).
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
