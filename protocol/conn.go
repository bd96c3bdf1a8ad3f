package protocol

import (
	"bytes"
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

// quoteMax is how many bytes of an incomplete question a log line shows.
const quoteMax = 64

// conn is one conversation.
type conn struct {
	nc     net.Conn
	remote string
	cut    atomic.Bool // closed by Shutdown when its deadline ended
}

// closeWriter is a connection that can send FIN while still reading.
type closeWriter interface{ CloseWrite() error }

// serveConn runs the conversation on c and closes c.
func (s *Server) serveConn(nc net.Conn) {
	c := &conn{nc: nc, remote: remoteString(nc)}
	if !s.trackConn(c, true) {
		nc.Close()
		s.done.Add(1)
		return
	}
	defer s.trackConn(c, false)
	st := s.settings.Load()
	peer := addrPortOf(nc.RemoteAddr())
	client := peer
	var initial []byte
	viaProxy := st.Proxy.Enabled && peer.IsValid() && st.Proxy.trusts(peer.Addr())
	if !viaProxy { // decided before a byte is read
		why, counted := s.admit(peer, st)
		if why != "" {
			s.refuse(peer, why)
			nc.Close()
			return
		}
		if counted {
			defer s.srcs.release(peer.Addr())
		}
	}
	if st.Proxy.Enabled && peer.IsValid() {
		var err error
		client, initial, err = s.proxyStart(nc, peer, st)
		if err != nil && !errors.Is(err, io.EOF) && !isTimeout(err) {
			s.refuse(peer, err.Error())
			nc.Close()
			return
		}
		if viaProxy {
			why, counted := s.admit(client, st)
			if why != "" {
				s.refuse(client, why+" (via "+peer.String()+")")
				nc.Close()
				return
			}
			if counted {
				defer s.srcs.release(client.Addr())
			}
		}
		c.remote = client.String()
	}
	log := s.log.With("client", c.remote)
	log.Info("accepted")
	how, detail := s.converse(c, log, initial)
	if how == endCut || c.cut.Load() {
		how = endCut
		s.cutCount.Add(1)
	}
	if how == endDrained {
		lingerClose(nc, s.drainEnd)
	} else {
		nc.Close()
	}
	logEnd(log, how, detail)
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
func (s *Server) converse(c *conn, log *slog.Logger, initial []byte) (ending, string) {
	nc := c.nc
	rd := newLazyReader(nc)
	rd.initial = initial
	defer rd.release()
	var (
		pending []byte    // the start of a question, without its '?'
		qStart  time.Time // when pending's first byte arrived
		out     []byte    // answers to write
	)
	defer func() { putBuf(out) }()
	for {
		st := s.settings.Load()
		lim := st.Limits
		now := time.Now()
		draining := s.draining.Load()
		dl := s.readDeadline(now, lim, len(pending) > 0, qStart, draining)
		nc.SetReadDeadline(dl)
		if !draining && s.draining.Load() {
			// Shutdown began between the check and SetReadDeadline, and
			// may have woken us before we moved the deadline back.
			draining = true
			nc.SetReadDeadline(s.readDeadline(now, lim, len(pending) > 0, qStart, true))
		}
		rbuf, n, rerr := rd.read()
		readAt, answered := time.Now(), 0
		if n > 0 {
			st = s.settings.Load() // a reload while we waited applies to these questions
			lim = st.Limits
			data := rbuf[:n]
			fresh := len(pending) == 0 // the bytes after the last '?' start a new question
			if !fresh {
				if bytes.IndexByte(data, '?') < 0 {
					// Still no '?': only the new bytes are searched, so a
					// question dripped a byte at a time costs linear time.
					pending = append(pending, data...)
					if lim.MaxQuestionBytes > 0 && len(pending) >= lim.MaxQuestionBytes {
						return endTooLong, strconv.Itoa(lim.MaxQuestionBytes)
					}
					data = nil
				} else {
					data = append(pending, data...)
				}
			}
			for data != nil {
				start, end, err := Split(data, lim.MaxQuestionBytes)
				if err != nil {
					s.flush(nc, out, lim)
					return endTooLong, strconv.Itoa(lim.MaxQuestionBytes)
				}
				if end < 0 {
					rest := data[start:]
					if len(rest) > 0 && fresh {
						qStart = time.Now()
					}
					pending = append(pending[:0], rest...) // copy handles the overlap
					break
				}
				if st.AnswerDelay > 0 && !s.sleep(st.AnswerDelay) {
					return endCut, quote(data[start:end])
				}
				if out == nil {
					out = getBuf()
				}
				out = append(out, st.Answers.Answer(data[start:end])...)
				answered++
				data = data[end:]
				fresh = true
			}
			rd.release() // nothing points into it any more: pending is a copy
			if len(out) > 0 {
				err := s.flush(nc, out, lim)
				s.latency.observe(time.Since(readAt), answered)
				if err != nil {
					if c.cut.Load() {
						return endCut, ""
					}
					if isTimeout(err) {
						return endWriteTimeout, ""
					}
					return endError, err.Error()
				}
				putBuf(out)
				out = nil
			}
			if len(pending) == 0 && pending != nil {
				pending = nil // an idle client keeps no buffer
			}
		}
		if rerr == nil {
			continue
		}
		switch {
		case errors.Is(rerr, io.EOF):
			if len(pending) > 0 {
				return endIncomplete, quote(pending)
			}
			return endEOF, ""
		case c.cut.Load():
			return endCut, quote(pending)
		case isTimeout(rerr):
			if s.draining.Load() {
				if len(pending) == 0 {
					if draining { // this read was the drain poll
						return endDrained, ""
					}
					continue
				}
				if !s.drainEnd.IsZero() && !time.Now().Before(s.drainEnd) {
					return endCut, quote(pending)
				}
				if lim.QuestionTimeout > 0 && !time.Now().Before(qStart.Add(lim.QuestionTimeout)) {
					return endQuestionTimeout, quote(pending)
				}
				continue
			}
			if len(pending) > 0 {
				if lim.QuestionTimeout > 0 && !time.Now().Before(qStart.Add(lim.QuestionTimeout)) {
					return endQuestionTimeout, quote(pending)
				}
				continue // woken early (reload, drain race): recompute
			}
			if lim.IdleTimeout > 0 && !time.Now().Before(now.Add(lim.IdleTimeout)) {
				return endIdle, ""
			}
			continue
		default:
			if len(pending) > 0 {
				return endError, rerr.Error() + " after " + quote(pending)
			}
			return endError, rerr.Error()
		}
	}
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

// lazyReader reads a connection without holding a buffer while it waits:
// on a TCP connection it waits for readability through the runtime's
// poller (syscall.RawConn) and takes a pooled buffer only for the read
// itself, so an idle conversation costs its goroutine and little else.
type lazyReader struct {
	nc      net.Conn
	rc      syscall.RawConn
	buf     []byte
	initial []byte // read before (the bytes after a PROXY header)
}

func newLazyReader(nc net.Conn) *lazyReader {
	r := &lazyReader{nc: nc}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			r.rc = rc
		}
	}
	return r
}

// read returns a buffer holding n bytes read, or the error (io.EOF at the
// end). The buffer stays valid until release.
func (r *lazyReader) read() ([]byte, int, error) {
	if len(r.initial) > 0 {
		b := r.initial
		r.initial = nil
		return b, len(b), nil
	}
	if r.rc == nil {
		if r.buf == nil {
			r.buf = make([]byte, readSize)
		}
		n, err := r.nc.Read(r.buf)
		return r.buf, n, err
	}
	var n int
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		if r.buf == nil {
			r.buf = getBuf()[:readSize]
		}
		n, rerr = syscall.Read(int(fd), r.buf)
		if rerr == syscall.EAGAIN {
			r.release() // wait without a buffer
			return false
		}
		return true
	})
	if err != nil {
		return nil, 0, err
	}
	switch {
	case rerr != nil:
		return nil, 0, rerr
	case n == 0:
		return nil, 0, io.EOF
	}
	return r.buf, n, nil
}

// release gives the buffer back to the pool (not for non-TCP connections,
// whose reads keep one).
func (r *lazyReader) release() {
	if r.rc != nil && r.buf != nil && cap(r.buf) > 0 {
		putBuf(r.buf)
		r.buf = nil
	}
}
