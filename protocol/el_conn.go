//go:build linux

package protocol

// The event loop's connection I/O: reading, framing and answering,
// writing what the kernel takes and queueing the rest, the client's FIN,
// the PROXY header, and closing.

import (
	"bytes"
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
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
		l.refuseConn(c, proxyRefusal(err))
		return
	case more:
		if c.state != stQuestion {
			l.setState(c, stQuestion)
		}
		return
	case n > 0 && c.proxy == proxyCheck:
		l.refuseConn(c, proxyRefusal(untrustedHeader(c.peer)))
		return
	}
	if c.proxy == proxyAwait {
		peer := c.peer
		if n > 0 {
			client, err := parseProxyHeader(c.pending[:n], peer)
			if err != nil {
				l.refuseConn(c, proxyRefusal(err))
				return
			}
			c.peer = client
		}
		why, counted := l.s.admit(c.peer, st)
		if why != nil {
			l.refuseConn(c, why.via(peer))
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
func (l *loop) refuseConn(c *elConn, why refusal) {
	l.s.refuse(c.peer, why)
	l.close(c, endRefused, "")
}
