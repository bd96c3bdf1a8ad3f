package protocol

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// readSize is the size of one read from a connection.
const readSize = 4096

// Output bounds per connection, on every engine: framing stops once a
// batch of answers reaches batchOut (the goroutine engines write it, the
// event loop keeps the rest of the input, reading no more, until it is
// taken); above maxOut queued answers the event loop does not read.
const (
	maxOut   = 64 << 10
	batchOut = 32 << 10
)

// quoteMax is how many bytes of an incomplete question a log line shows.
const quoteMax = 64

// conn is one conversation.
type conn struct {
	nc      net.Conn
	remote  string
	log     *slog.Logger
	counted netip.Addr  // counted in the per-source limits under this address
	cut     atomic.Bool // closed by Shutdown when its deadline ended
}

// closeWriter is a connection that can send FIN while still reading.
type closeWriter interface{ CloseWrite() error }

// serveConn runs the conversation on c and closes c.
func (s *Server) serveConn(nc net.Conn) { s.serveConnStarted(nc, nil) }

// serveConnStarted is serveConn that calls started (when not nil) once
// the connection is tracked or refused.
func (s *Server) serveConnStarted(nc net.Conn, started func()) {
	// Setup and teardown are separate calls so that this frame stays
	// small: it is on the stack for the whole conversation.
	c, initial, ok := s.openConn(nc, started)
	if !ok {
		return
	}
	how, detail := s.converse(c, c.log, initial)
	s.closeConn(c, how, detail)
}

// openConn tracks a new connection and decides whether it is served:
// access control and per-source limits, on the real client's address
// when a trusted proxy sent a PROXY header. It returns the conversation's
// first bytes when the header was followed by more.
//
//go:noinline
func (s *Server) openConn(nc net.Conn, started func()) (*conn, []byte, bool) {
	c := &conn{nc: nc, remote: remoteString(nc)}
	tracked := s.trackConn(c, true)
	if started != nil {
		started()
	}
	if !tracked {
		nc.Close()
		s.done.Add(1)
		return nil, nil, false
	}
	refuse := func(who netip.AddrPort, why refusal) (*conn, []byte, bool) {
		s.refuse(who, why)
		nc.Close()
		s.closeConn(c, endRefused, "")
		return nil, nil, false
	}
	st := s.settings.Load()
	if b := st.Limits.SendBuffer; b > 0 {
		setSendBuffer(nc, b)
	}
	peer := addrPortOf(nc.RemoteAddr())
	client := peer
	var initial []byte
	viaProxy := st.Proxy.Enabled && peer.IsValid() && st.Proxy.trusts(peer.Addr())
	if !viaProxy { // decided before a byte is read
		why, counted := s.admit(peer, st)
		if why != nil {
			return refuse(peer, *why)
		}
		if counted {
			c.counted = peer.Addr()
		}
	}
	if st.Proxy.Enabled && peer.IsValid() {
		var err error
		client, initial, err = s.proxyStart(nc, peer, st)
		switch {
		case errors.Is(err, ErrProxyHeader):
			return refuse(peer, proxyRefusal(err))
		case err != nil && !errors.Is(err, io.EOF) && !isTimeout(err):
			// The connection failed while its header was awaited: an
			// error, as on every engine, not a refusal.
			c.log = s.log.With("client", c.remote)
			s.closeConn(c, endError, err.Error())
			return nil, nil, false
		}
		if viaProxy {
			why, counted := s.admit(client, st)
			if why != nil {
				return refuse(client, why.via(peer))
			}
			if counted {
				c.counted = client.Addr()
			}
		}
		c.remote = client.String()
	}
	c.log = s.log.With("client", c.remote)
	c.log.Info("accepted")
	return c, initial, true
}

// closeConn closes a conversation that ended how, logs it, and untracks
// it.
//
//go:noinline
func (s *Server) closeConn(c *conn, how ending, detail string) {
	defer s.trackConn(c, false)
	if c.counted.IsValid() {
		s.srcs.release(c.counted)
	}
	if how == endRefused {
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
	logEnd(c.log, how, detail)
}

// endLevel is the level logEnd logs an ending at.
func endLevel(how ending) slog.Level {
	switch how {
	case endEOF, endDrained, endIdle:
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// logEnd logs how a conversation ended, the same way for every engine.
func logEnd(log *slog.Logger, how ending, detail string) {
	switch how {
	case endEOF:
		log.Info("closed")
	case endIncomplete:
		log.Warn("incomplete question then closed", "bytes", detail)
	case endDrained:
		log.Info("closed at shutdown")
	case endCut:
		log.Warn("cut off at shutdown deadline", "pending", detail)
	case endTooLong:
		log.Warn("question too long, closed", "limit", detail)
	case endIdle:
		log.Info("idle timeout, closed")
	case endQuestionTimeout:
		log.Warn("question timeout, closed", "bytes", detail)
	case endWriteTimeout:
		log.Warn("client does not read its answers, closed")
	default:
		log.Warn("connection error", "err", detail)
	}
}

type ending int

const (
	endEOF ending = iota
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

// converse answers questions on c until the client hangs up, a limit is
// hit, or the server drains. It reports how the conversation ended and a
// detail for the log.
//
// The loop is kept tiny on purpose: the goroutine parks in Read with only
// this function and the net package below it on its stack, so the
// runtime shrinks the stack back to its minimum while the client is idle
// (the work of a read happens in step, whose deeper frames are gone by
// the next Read). An idle conversation then costs about 2 KiB of stack
// and a small read buffer.
func (s *Server) converse(c *conn, log *slog.Logger, initial []byte) (ending, string) {
	cv := &conversation{s: s, c: c, nc: c.nc, initial: initial}
	defer cv.finish()
	for {
		cv.prepare()
		b := cv.buffer()
		var n int
		var err error
		if len(cv.initial) > 0 {
			b, n, cv.initial = cv.initial, len(cv.initial), nil
		} else {
			n, err = cv.nc.Read(b)
			cv.useBig = n == len(b) // a full read: more is probably waiting
		}
		if cv.step(b, n, err) {
			return cv.how, cv.detail
		}
	}
}

// smallRead is the buffer an idle conversation reads into: a pipelined
// batch of a dozen questions fits. A read that fills it means the client
// is sending more, and the next read uses a full-size pooled buffer until
// a read leaves it part empty.
const smallRead = 512

// conversation is the state of one conversation between reads.
type conversation struct {
	s       *Server
	c       *conn
	nc      net.Conn
	initial []byte // read before (the bytes after a PROXY header)
	small   [smallRead]byte
	big     []byte
	useBig  bool
	pending []byte    // the start of a question, without its '?'
	qStart  time.Time // when pending's first byte (or spaced's first space) arrived
	// spaced: whitespace came since the last answer, and no question byte
	// yet. It starts the question timeout as any byte does: a client
	// dripping spaces is cut as one dripping letters is.
	spaced bool
	out    []byte // answers to write
	lim    Limits
	now    time.Time
	drain  bool // the last deadline was set for the drain
	how    ending
	detail string
}

// inQuestion reports whether a question (or whitespace before one) has
// begun: the question timeout applies, not the idle timeout.
func (cv *conversation) inQuestion() bool { return len(cv.pending) > 0 || cv.spaced }

// buffer returns the buffer for the next read.
func (cv *conversation) buffer() []byte {
	if !cv.useBig {
		return cv.small[:]
	}
	if cv.big == nil {
		cv.big = getBuf()[:readSize]
	}
	return cv.big
}

func (cv *conversation) finish() {
	putBuf(cv.out)
	putBuf(cv.big)
}

// end records how the conversation ends; step returns true with it.
func (cv *conversation) end(how ending, detail string) bool {
	cv.how, cv.detail = how, detail
	return true
}

// prepare sets the read deadline for the next read.
//
//go:noinline
func (cv *conversation) prepare() {
	s := cv.s
	cv.lim = s.settings.Load().Limits
	cv.now = time.Now()
	cv.drain = s.draining.Load()
	cv.nc.SetReadDeadline(s.readDeadline(cv.now, cv.lim, cv.inQuestion(), cv.qStart, cv.drain))
	if !cv.drain && s.draining.Load() {
		// Shutdown began between the check and SetReadDeadline, and
		// may have woken us before we moved the deadline back.
		cv.drain = true
		cv.nc.SetReadDeadline(s.readDeadline(cv.now, cv.lim, cv.inQuestion(), cv.qStart, true))
	}
}

// step handles the outcome of one read: frames and answers what came,
// or decides how the conversation ends (true).
//
//go:noinline
func (cv *conversation) step(rbuf []byte, n int, rerr error) bool {
	s, c, nc := cv.s, cv.c, cv.nc
	if n > 0 {
		readAt, answered := time.Now(), 0
		st := s.settings.Load() // a reload while we waited applies to these questions
		lim := st.Limits
		data := rbuf[:n]
		fresh := len(cv.pending) == 0 // the bytes after the last '?' start a new question
		if !fresh {
			if bytes.IndexByte(data, '?') < 0 {
				// Still no '?': only the new bytes are searched, so a
				// question dripped a byte at a time costs linear time.
				cv.pending = append(cv.pending, data...)
				if lim.MaxQuestionBytes > 0 && len(cv.pending) >= lim.MaxQuestionBytes {
					return cv.end(endTooLong, strconv.Itoa(lim.MaxQuestionBytes))
				}
				data = nil
			} else {
				data = append(cv.pending, data...)
			}
		}
		for data != nil {
			start, end, err := Split(data, lim.MaxQuestionBytes)
			if err != nil {
				s.flush(nc, cv.out, lim)
				return cv.end(endTooLong, strconv.Itoa(lim.MaxQuestionBytes))
			}
			if end < 0 {
				rest := data[start:]
				if fresh && !cv.spaced && (len(rest) > 0 || start > 0) {
					cv.qStart = time.Now() // a question (or the space before one) begins
					cv.spaced = len(rest) == 0
				}
				cv.pending = append(cv.pending[:0], rest...) // copy handles the overlap
				break
			}
			if st.AnswerDelay > 0 && !s.sleep(st.AnswerDelay) {
				return cv.end(endCut, quote(data[start:end]))
			}
			if cv.out == nil {
				cv.out = getBuf()
			}
			cv.out = append(cv.out, st.Answers.Answer(data[start:end])...)
			answered++
			data = data[end:]
			fresh = true
			cv.spaced = false
			if len(cv.out) >= batchOut && len(data) > 0 {
				// Answers are written as they reach a batch, so one
				// read of many questions never holds more than a batch
				// of answers (answers are up to 1 KiB each).
				if cv.write(lim, readAt, answered) {
					return true
				}
				answered = 0
			}
		}
		if !cv.useBig && cv.big != nil {
			putBuf(cv.big) // nothing points into it any more: pending is a copy
			cv.big = nil
		}
		if len(cv.out) > 0 {
			if cv.write(lim, readAt, answered) {
				return true
			}
			putBuf(cv.out)
			cv.out = nil
		}
		if len(cv.pending) == 0 && cv.pending != nil {
			cv.pending = nil // an idle client keeps no buffer
		}
	}
	if rerr == nil {
		return false
	}
	pending, lim := cv.pending, cv.lim
	switch {
	case errors.Is(rerr, io.EOF):
		if len(pending) > 0 {
			return cv.end(endIncomplete, quote(pending))
		}
		return cv.end(endEOF, "")
	case c.cut.Load():
		return cv.end(endCut, quote(pending))
	case isTimeout(rerr):
		if s.draining.Load() {
			if len(pending) == 0 {
				if cv.drain { // this read was the drain poll
					return cv.end(endDrained, "")
				}
				return false
			}
			if !s.drainEnd.IsZero() && !time.Now().Before(s.drainEnd) {
				return cv.end(endCut, quote(pending))
			}
			if lim.QuestionTimeout > 0 && !time.Now().Before(cv.qStart.Add(lim.QuestionTimeout)) {
				return cv.end(endQuestionTimeout, quote(pending))
			}
			return false
		}
		if cv.inQuestion() {
			if lim.QuestionTimeout > 0 && !time.Now().Before(cv.qStart.Add(lim.QuestionTimeout)) {
				return cv.end(endQuestionTimeout, quote(pending))
			}
			return false // woken early (reload, drain race): recompute
		}
		if lim.IdleTimeout > 0 && !time.Now().Before(cv.now.Add(lim.IdleTimeout)) {
			return cv.end(endIdle, "")
		}
		return false
	}
	if len(pending) > 0 {
		return cv.end(endError, rerr.Error()+" after "+quote(pending))
	}
	return cv.end(endError, rerr.Error())
}

// write sends the answers in out with the write timeout; true means the
// conversation ends (how is set).
func (cv *conversation) write(lim Limits, readAt time.Time, answered int) bool {
	err := cv.s.flush(cv.nc, cv.out, lim)
	cv.s.latency.observe(time.Since(readAt), answered)
	if err != nil {
		if cv.c.cut.Load() {
			return cv.end(endCut, "")
		}
		if isTimeout(err) {
			return cv.end(endWriteTimeout, "")
		}
		return cv.end(endError, err.Error())
	}
	cv.out = cv.out[:0]
	return false
}

// readDeadline returns when the next read must give up.
func (s *Server) readDeadline(now time.Time, lim Limits, inQuestion bool, qStart time.Time, draining bool) time.Time {
	var dl time.Time
	if inQuestion {
		if lim.QuestionTimeout > 0 {
			dl = qStart.Add(lim.QuestionTimeout)
		}
	} else if lim.IdleTimeout > 0 {
		dl = now.Add(lim.IdleTimeout)
	}
	if draining {
		if !inQuestion {
			return now.Add(drainPoll)
		}
		if !s.drainEnd.IsZero() && (dl.IsZero() || s.drainEnd.Before(dl)) {
			dl = s.drainEnd
		}
	}
	return dl
}

// flush writes out with the write timeout.
func (s *Server) flush(nc net.Conn, out []byte, lim Limits) error {
	if len(out) == 0 {
		return nil
	}
	if lim.WriteTimeout > 0 {
		nc.SetWriteDeadline(time.Now().Add(lim.WriteTimeout))
	} else {
		nc.SetWriteDeadline(time.Time{})
	}
	_, err := nc.Write(out)
	return err
}

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

// sleep waits d, the simulated cost of an answer; false means the server
// is closing every connection now.
func (s *Server) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.kill:
		return false
	}
}
