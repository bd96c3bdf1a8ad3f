package protocol

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// readSize is the size of one read from a connection.
const readSize = 4096

// Output bounds per connection, on every engine (the session applies
// them): framing stops once batchOut bytes of answers wait to be taken,
// and the rest of the input waits, unread more, until they are; no engine
// reads while more than maxOut bytes of answers wait.
const (
	maxOut   = 64 << 10
	batchOut = 32 << 10
)

// quoteMax is how many bytes of an incomplete question a log line shows.
const quoteMax = 64

// conn is one conversation of the engines that give each connection a
// goroutine (single, pool, goroutine; in-zen1 and in-zen2 through them):
// the socket, and the session it moves bytes to and from.
type conn struct {
	nc         net.Conn
	rc         syscall.RawConn // nc's descriptor, when it has one: reads that hold no buffer while parked
	cut        atomic.Bool     // closed by Shutdown when its deadline ended
	prev, next *conn           // in the server's list (its lock)
	ss         session

	// The read in progress, for rawRead (a method value made once: a
	// closure per read would be garbage per read).
	rawRead func(fd uintptr) bool
	rbuf    []byte
	rn      int
	rerr    error
}

// connList is an intrusive list of conversations: tracking one costs
// two pointers and no garbage, where a map grows and leaves its old
// buckets behind.
type connList struct{ head *conn }

func (l *connList) add(c *conn) {
	c.prev, c.next = nil, l.head
	if l.head != nil {
		l.head.prev = c
	}
	l.head = c
}

func (l *connList) remove(c *conn) {
	if c.prev != nil {
		c.prev.next = c.next
	} else if l.head == c {
		l.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	}
	c.prev, c.next = nil, nil
}

// closeWriter is a connection that can send FIN while still reading.
type closeWriter interface{ CloseWrite() error }

// serveConn runs the conversation on c and closes c.
func (s *Server) serveConn(nc net.Conn) {
	if c := s.begin(nc); c != nil {
		s.converse(c)
		s.closeConn(c)
	}
}

// begin tracks nc and starts its session (admission, the "accepted"
// line); nil when the server is past its drain deadline (nc is closed).
// The goroutine engine calls it on the accept loop's goroutine, so that
// a conversation's own goroutine starts parked in its first read with
// the smallest stack: an idle connection costs that stack and its conn.
func (s *Server) begin(nc net.Conn) *conn {
	c := &conn{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
		c.rawRead = c.tryRead
	}
	if !s.trackConn(c, true) {
		nc.Close()
		s.done.Add(1)
		return nil
	}
	st := s.settings.Load()
	if b := st.Limits.SendBuffer; b > 0 {
		setSendBuffer(nc, b)
	}
	c.ss.start(s, addrPortOf(nc.RemoteAddr()), mono(), st)
	return c
}

// converse moves bytes between c's socket and its session until the
// conversation ends: answers first, then a read when the session wants
// one, else the wait for a delayed answer.
//
// The loop is kept small on purpose: the goroutine parks in Read with
// only these frames and the net package below it on its stack, so the
// runtime shrinks the stack back to its minimum while the client is idle.
// An idle conversation then costs about 2 KiB of stack and its conn.
func (s *Server) converse(c *conn) {
	ss := &c.ss
	for {
		if _, _, done := ss.Ending(); done {
			return
		}
		st := s.settings.Load() // a reload applies from the next question on
		if !ss.draining && s.draining.Load() {
			ss.Drain()
			continue
		}
		switch {
		case c.cut.Load():
			ss.Kill()
		case len(ss.Output()) > 0:
			s.send(c, st)
		case ss.WantRead():
			s.receive(c, st)
		default:
			s.await(c, st)
		}
	}
}

// receive reads once into the session, with its deadline.
//
//go:noinline
func (s *Server) receive(c *conn, st *Settings) {
	ss := &c.ss
	c.nc.SetReadDeadline(wall(ss.Deadline(st.Limits)))
	if !ss.draining && s.draining.Load() {
		// Shutdown began between the check and SetReadDeadline, and may
		// have woken us before we moved the deadline back.
		return
	}
	b, n, err := c.read()
	now := mono()
	st = s.settings.Load() // a reload while we waited applies to these questions
	if n > 0 {
		ss.Input(now, b[:n], st)
	}
	putBuf(b) // the session copied what it keeps
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		ss.EOF()
	case c.cut.Load():
		ss.Kill()
	case isTimeout(err):
		ss.Tick(now, st) // nothing when woken early (drain, reload)
	default:
		ss.Fail(err)
	}
}

// send writes the session's answers, with the write timeout counted from
// the last progress.
//
//go:noinline
func (s *Server) send(c *conn, st *Settings) {
	ss := &c.ss
	c.nc.SetWriteDeadline(wall(ss.Deadline(st.Limits)))
	n, err := c.nc.Write(ss.Output())
	now := mono()
	ss.Wrote(now, n, st)
	switch {
	case err == nil:
	case c.cut.Load():
		ss.Kill()
	case isTimeout(err):
		ss.Tick(now, st)
	default:
		ss.Fail(err)
	}
}

// await waits for a delayed answer to fall due, or for the drain's
// deadline.
//
//go:noinline
func (s *Server) await(c *conn, st *Settings) {
	ss := &c.ss
	dl := ss.Deadline(st.Limits)
	if dl == 0 {
		ss.Fail(errStalled) // no state waits for nothing: a bug, not a hang
		return
	}
	t := time.NewTimer(time.Duration(dl - mono()))
	defer t.Stop()
	select {
	case <-t.C:
		ss.Tick(mono(), st)
	case <-s.kill:
		ss.Kill()
	}
}

// errStalled ends a session that neither reads, writes nor waits for a
// deadline.
var errStalled = errors.New("conversation stalled")

// read reads once from c's socket into a pooled buffer, which the caller
// gives back. On a socket with a descriptor the buffer is borrowed only
// when data (or the FIN) is there: a read that would block gives it back
// before parking, so a conversation waiting for its client holds none.
func (c *conn) read() ([]byte, int, error) {
	if c.rc == nil {
		b := getBuf()[:readSize]
		n, err := c.nc.Read(b)
		return b, n, err
	}
	c.rn = 0
	err := c.rc.Read(c.rawRead)
	b, n, rerr := c.rbuf, c.rn, c.rerr
	c.rbuf, c.rerr = nil, nil
	switch {
	case err != nil:
		return b, 0, err
	case rerr != nil:
		return b, 0, rerr
	case n == 0:
		return b, 0, io.EOF
	}
	return b, n, nil
}

// tryRead is rawRead: one read(2) into a pooled buffer, given back when
// there is nothing to read (the caller then parks). It always tries
// first: the poller forgets a readiness that came before the read began,
// and is edge-triggered, so a wait before trying could last forever.
func (c *conn) tryRead(fd uintptr) bool {
	c.rbuf = getBuf()[:readSize]
	n, err := syscall.Read(int(fd), c.rbuf)
	if err == syscall.EAGAIN || err == syscall.EINTR {
		putBuf(c.rbuf)
		c.rbuf = nil
		return false
	}
	c.rn, c.rerr = max(n, 0), err
	return true
}

// closeConn closes a conversation that ended, logs how, and untracks it.
//
//go:noinline
func (s *Server) closeConn(c *conn) {
	defer s.trackConn(c, false)
	how, detail, _ := c.ss.Ending()
	name := remoteString(c.nc)
	if c.ss.client.IsValid() {
		name = c.ss.client.String()
	}
	c.ss.Close()
	if how == endRefused {
		c.nc.Close()
		return
	}
	if how == endCut || c.cut.Load() {
		how = endCut
		s.cutCount.Add(1)
	}
	if how == endDrained {
		lingerClose(c.nc, s.drainEnd)
	} else {
		c.nc.Close()
	}
	s.logEnd(&c.ss, name, how, detail)
}

// endLevel is the level an ending is logged at.
func endLevel(how ending) slog.Level {
	switch how {
	case endEOF, endReset, endDrained, endIdle:
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// logEnd logs how the conversation of ss with the client name ended, the
// same way for every engine: at debug for a proxy's health check.
func (s *Server) logEnd(ss *session, name string, how ending, detail string) {
	level := endLevel(how)
	if ss.check {
		level = slog.LevelDebug
	}
	if how == endRefused || !s.log.Enabled(context.Background(), level) {
		return
	}
	var msg string
	var args []any
	switch how {
	case endEOF:
		msg = "closed"
	case endReset:
		msg, args = "closed", []any{"by", "reset"}
	case endIncomplete:
		msg, args = "incomplete question then closed", []any{"bytes", detail}
	case endDrained:
		msg = "closed at shutdown"
	case endCut:
		msg, args = "cut off at shutdown deadline", []any{"pending", detail}
	case endTooLong:
		msg, args = "question too long, closed", []any{"limit", detail}
	case endIdle:
		msg = "idle timeout, closed"
	case endQuestionTimeout:
		msg, args = "question timeout, closed", []any{"bytes", detail}
	case endWriteTimeout:
		msg = "client does not read its answers, closed"
	default:
		msg, args = "connection error", []any{"err", detail}
	}
	s.log.Log(context.Background(), level, msg, append([]any{"client", name}, args...)...)
}

type ending int

const (
	endEOF   ending = iota
	endReset        // the client reset the connection between questions, every answer taken
	endIncomplete
	endDrained
	endCut
	endTooLong
	endIdle
	endQuestionTimeout
	endWriteTimeout
	endError
	endRefused // logged by refuse
)

// lingerClose sends FIN after the answers, then reads and discards what the
// client still sends until it closes too or a short time passes, so that
// unread bytes do not make the kernel reset the connection and destroy
// answers that are still in flight.
func lingerClose(nc net.Conn, end time.Time) {
	cw, ok := nc.(closeWriter)
	if !ok || cw.CloseWrite() != nil {
		nc.Close()
		return
	}
	dl := time.Now().Add(lingerMax)
	if !end.IsZero() && end.Before(dl) {
		dl = end
	}
	nc.SetReadDeadline(dl)
	var buf [512]byte
	for {
		if _, err := nc.Read(buf[:]); err != nil {
			break
		}
	}
	nc.Close()
}

// setSendBuffer sets nc's SO_SNDBUF to b, where nc has a socket.
func setSendBuffer(nc net.Conn, b int) {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return
	}
	if rc, err := sc.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF, b) })
	}
}

func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}

// quote returns b quoted for a log line, cut to quoteMax bytes.
func quote(b []byte) string {
	if len(b) > quoteMax {
		return strconv.Quote(string(b[:quoteMax])) + "... (" + strconv.Itoa(len(b)) + " bytes)"
	}
	return strconv.Quote(string(b))
}

func remoteString(nc net.Conn) string {
	if a := nc.RemoteAddr(); a != nil {
		return a.String()
	}
	return "unknown"
}
