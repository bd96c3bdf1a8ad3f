package protocol

// The conversation, written once. A session is one client's conversation
// without a socket: bytes and the time go in, answers and an ending come
// out. Every engine (single, pool, goroutine, eventloop, and through the
// goroutine engine in-zen1 and in-zen2) only moves bytes between a socket
// and a session, and calls Tick when Deadline says so.

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"syscall"
	"time"
)

// epoch is the origin of the sessions' clock: times are nanoseconds since
// it, on the monotonic clock.
var epoch = time.Now()

// mono returns the sessions' clock now.
func mono() int64 { return int64(time.Since(epoch)) }

// wall returns the wall-clock time of t on the sessions' clock; zero for
// t == 0 (no deadline).
func wall(t int64) time.Time {
	if t == 0 {
		return time.Time{}
	}
	return epoch.Add(time.Duration(t))
}

// phase is what a session waits for, which decides its next timeout.
type phase uint8

const (
	phIdle     phase = iota // between questions: idle_timeout (drainPoll while draining)
	phQuestion              // a question, whitespace or a PROXY header has begun: question_timeout
	phWriting               // answers wait for the client to take them: write_timeout
	phDelayed               // an answer waits out answer_delay
	phEnded                 // the conversation is over: see ending
	nPhases
)

// session is one conversation. It owns framing (whitespace, '?', the
// length limit), the answer table, the output bound, every timeout, the
// PROXY header and its admission, and the drain. It is not safe for
// concurrent use: one engine goroutine drives it.
//
// Memory is bounded whatever the client does: the input kept is at most
// one read or one question (max_question_bytes), and answers are framed
// only while fewer than batchOut bytes of them wait to be taken; the rest
// of the input waits and the engine stops reading (WantRead) until they
// are taken.
type session struct {
	srv    *Server
	peer   netip.AddrPort // who connected
	client netip.AddrPort // who is served: peer, or whom a PROXY header names

	in      []byte // input not yet answered
	out     []byte // answers not yet taken
	delayed []byte // the answer waiting out answer_delay

	proxy    uint8 // proxyAwait or proxyCheck until the first bytes decide
	q        bool  // a question (or whitespace, or a header) has begun
	eof      bool  // the client half-closed: answer what it asked, then end
	draining bool
	stopping bool // ending once the answers are taken
	check    bool // a proxy's health check (a LOCAL header): logged at debug
	counted  bool // counted in the per-source limits under client

	ph      phase
	how     ending
	detail  string
	qStart  int64 // when the question began
	idle    int64 // when the last answer was given or the session began
	written int64 // when output last became pending or made progress
	due     int64 // when the delayed answer is due
	inAt    int64 // when the input being answered arrived
}

// PROXY protocol states of a session.
const (
	proxyAwait uint8 = 1 // a trusted proxy: a header may name the client
	proxyCheck uint8 = 2 // any other peer: a header is refused
)

// start begins the conversation of peer, accepted at now: a trusted
// proxy's connection waits for its header (within question_timeout),
// any other is admitted or refused at once, before a byte is read. An
// invalid peer (not an IP connection) is served without admission.
func (ss *session) start(srv *Server, peer netip.AddrPort, now int64, st *Settings) {
	*ss = session{srv: srv, peer: peer, client: peer, idle: now, draining: srv.draining.Load()}
	if st.Proxy.Enabled && peer.IsValid() {
		if st.Proxy.trusts(peer.Addr()) {
			ss.proxy = proxyAwait
			ss.q, ss.qStart = true, now // the header must come within question_timeout
			ss.settle()
			return
		}
		ss.proxy = proxyCheck
	}
	ss.admit(st, netip.AddrPort{})
	ss.settle()
}

// admit applies access control and per-source limits to the client; via
// is the proxy that named it (invalid when none).
func (ss *session) admit(st *Settings, via netip.AddrPort) {
	why, counted := ss.srv.admit(ss.client, st)
	if why != nil {
		if via.IsValid() {
			*why = why.via(via)
		}
		ss.refuse(*why)
		return
	}
	ss.counted = counted
	level := slog.LevelInfo
	if ss.check {
		level = slog.LevelDebug
	}
	if log := ss.srv.log; log.Enabled(context.Background(), level) {
		if via.IsValid() {
			log.Log(context.Background(), level, "accepted", "client", ss.clientString(), "via", via.String())
		} else {
			log.Log(context.Background(), level, "accepted", "client", ss.clientString())
		}
	}
}

// refuse ends the session unserved and counts and logs why.
func (ss *session) refuse(why refusal) {
	ss.srv.refuse(ss.client, why)
	ss.fail(endRefused, "")
}

// clientString names the client in log lines.
func (ss *session) clientString() string {
	if ss.client.IsValid() {
		return ss.client.String()
	}
	return "unknown"
}

// Input takes bytes the client sent at now and answers the questions in
// them, as far as the output bound allows.
func (ss *session) Input(now int64, data []byte, st *Settings) {
	if ss.ph == phEnded || ss.stopping || len(data) == 0 {
		return
	}
	ss.inAt = now
	if ss.proxy != 0 {
		ss.proxyInput(now, data, st)
		ss.settle()
		return
	}
	max := st.Limits.MaxQuestionBytes
	if len(ss.in) > 0 && ss.q && bytes.IndexByte(data, '?') < 0 {
		// Still no '?': only the new bytes are searched, so a question
		// dripped a byte at a time costs linear time.
		ss.in = append(ss.in, data...)
		if max > 0 && len(ss.in) >= max {
			ss.stop(endTooLong, strconv.Itoa(max))
		}
		ss.settle()
		return
	}
	if len(ss.in) > 0 {
		ss.in = append(ss.in, data...)
		data = ss.in
	}
	ss.frame(now, data, st)
	ss.settle()
}

// frame answers the questions in data (which may be ss.in) while the
// output bound allows, and keeps the rest in ss.in.
func (ss *session) frame(now int64, data []byte, st *Settings) {
	max := st.Limits.MaxQuestionBytes
	answered := 0
	for ss.delayed == nil && len(ss.out) < batchOut {
		start, end, err := Split(data, max)
		if err != nil {
			data = nil
			ss.stop(endTooLong, strconv.Itoa(max))
			break
		}
		if end < 0 {
			if !ss.q && len(data) > 0 {
				// A question, or whitespace before one, begins: the
				// question timeout starts, and more bytes do not
				// restart it.
				ss.q, ss.qStart = true, now
			}
			data = data[start:]
			break
		}
		ans := st.Answers.Answer(data[start:end])
		data = data[end:]
		ss.q = false
		ss.idle = now
		if st.AnswerDelay > 0 {
			ss.delayed = ans
			ss.due = now + int64(st.AnswerDelay)
			break
		}
		if ss.out == nil {
			ss.out = getOut()
		}
		if len(ss.out) == 0 {
			ss.written = now
		}
		ss.out = append(ss.out, ans...)
		answered++
	}
	ss.keep(data)
	if answered > 0 {
		ss.srv.latency.observe(time.Duration(now-ss.inAt), answered)
	}
}

// keep stores rest (which may overlap ss.in) as the input not yet
// answered; an idle session keeps no buffer.
func (ss *session) keep(rest []byte) {
	if len(rest) == 0 {
		putBuf(ss.in)
		ss.in = nil
		return
	}
	if ss.in == nil {
		ss.in = getBuf()
	}
	ss.in = append(ss.in[:0], rest...) // copy handles the overlap
}

// proxyInput handles the first bytes while the PROXY protocol is on: a
// header from a trusted proxy names the client, who is then admitted; a
// header from anyone else is refused.
func (ss *session) proxyInput(now int64, data []byte, st *Settings) {
	if ss.in == nil {
		ss.in = getBuf()
	}
	ss.in = append(ss.in, data...)
	if !ss.q {
		ss.q, ss.qStart = true, now
	}
	n, more, err := splitProxyHeader(ss.in)
	if err == errV1TooLong && ss.proxy == proxyCheck {
		err = nil // no header: a question that starts with "PROXY "
	}
	switch {
	case err != nil:
		ss.refuse(proxyRefusal(err))
		return
	case more:
		return
	case n > 0 && ss.proxy == proxyCheck:
		ss.refuse(proxyRefusal(untrustedHeader(ss.peer)))
		return
	}
	if ss.proxy == proxyAwait {
		if n > 0 {
			client, local, err := parseProxyHeader(ss.in[:n], ss.peer)
			if err != nil {
				ss.refuse(proxyRefusal(err))
				return
			}
			ss.client, ss.check = client, local
		}
		ss.admit(st, ss.peer)
		if ss.ph == phEnded {
			return
		}
	}
	ss.proxy = 0
	ss.q = false
	ss.idle = now
	ss.frame(now, ss.in[n:], st)
}

// Output returns the answers waiting to be sent.
func (ss *session) Output() []byte { return ss.out }

// Wrote records that the client took n bytes of Output at now, and
// answers what was held back once all are taken.
func (ss *session) Wrote(now int64, n int, st *Settings) {
	if n <= 0 || ss.ph == phEnded {
		return
	}
	ss.written = now
	ss.out = ss.out[:copy(ss.out, ss.out[n:])]
	if len(ss.out) == 0 {
		putBuf(ss.out)
		ss.out = nil
		ss.idle = now // idle from when the client has its answers
		if !ss.stopping && len(ss.in) > 0 && !ss.q {
			ss.frame(now, ss.in, st)
		}
	}
	ss.settle()
}

// EOF records the client's FIN: what it asked before is answered, then
// the conversation ends.
func (ss *session) EOF() {
	if ss.ph == phEnded {
		return
	}
	ss.eof = true
	ss.settle()
}

// Fail ends the session on a read or write error. A reset between
// questions, with every answer taken, is how many clients (and proxies'
// health checks) hang up: an ending, not an error.
func (ss *session) Fail(err error) {
	if ss.ph == phEnded {
		return
	}
	if errors.Is(err, syscall.ECONNRESET) && !ss.q && len(ss.in) == 0 && len(ss.out) == 0 && ss.delayed == nil {
		ss.fail(endReset, "")
		return
	}
	detail := err.Error()
	if len(ss.in) > 0 && ss.q {
		detail += " after " + quote(ss.in)
	}
	ss.fail(endError, detail)
}

// Kill ends the session at once: the drain's deadline ended.
func (ss *session) Kill() {
	if ss.ph == phEnded {
		return
	}
	ss.fail(endCut, ss.pendingQuote())
}

// Drain starts the drain: the conversation ends at its next question
// boundary, once quiet for drainPoll.
func (ss *session) Drain() {
	if ss.ph != phEnded && !ss.draining {
		ss.draining = true
		ss.settle()
	}
}

// WantRead reports whether the engine should read: not after the
// client's FIN or the ending, nor while an answer waits out answer_delay,
// input is held back, or more than maxOut bytes of answers wait.
func (ss *session) WantRead() bool {
	return ss.ph != phEnded && !ss.stopping && !ss.eof && ss.delayed == nil &&
		len(ss.out) <= maxOut && !(len(ss.in) > 0 && !ss.q)
}

// Phase returns what the session waits for and since when (for the
// delayed phase: when the answer is due). Within a phase the timeout is
// the same for every session, so an engine may keep its sessions in
// lists ordered by since and look only at the heads.
func (ss *session) Phase() (phase, int64) {
	switch ss.ph {
	case phDelayed:
		return phDelayed, ss.due
	case phWriting:
		return phWriting, ss.written
	case phQuestion:
		return phQuestion, ss.qStart
	}
	return ss.ph, ss.idle
}

// Deadline returns when Tick is due under lim (0: never).
func (ss *session) Deadline(lim Limits) int64 {
	after := func(t int64, d time.Duration) int64 {
		if d <= 0 {
			return 0
		}
		return t + int64(d)
	}
	switch ss.ph {
	case phDelayed:
		return ss.due
	case phWriting:
		return after(ss.written, lim.WriteTimeout)
	case phQuestion:
		return after(ss.qStart, lim.QuestionTimeout)
	case phIdle:
		if ss.draining {
			return ss.idle + int64(drainPoll)
		}
		return after(ss.idle, lim.IdleTimeout)
	}
	return 0
}

// Tick applies what is due at now: a delayed answer is given, a timeout
// ends the conversation, a quiet draining one ends at its question
// boundary. Early calls do nothing.
func (ss *session) Tick(now int64, st *Settings) {
	dl := ss.Deadline(st.Limits)
	if dl == 0 || now < dl {
		return
	}
	switch ss.ph {
	case phDelayed:
		ans := ss.delayed
		ss.delayed = nil
		if ss.out == nil {
			ss.out = getOut()
		}
		if len(ss.out) == 0 {
			ss.written = now
		}
		ss.out = append(ss.out, ans...)
		ss.idle = now
		ss.srv.latency.observe(st.AnswerDelay, 1)
		if len(ss.in) > 0 && !ss.q && len(ss.out) < batchOut {
			ss.frame(now, ss.in, st)
		}
	case phWriting:
		ss.fail(endWriteTimeout, "")
	case phQuestion:
		ss.fail(endQuestionTimeout, quote(ss.in))
	case phIdle:
		if ss.draining {
			ss.stop(endDrained, "")
		} else {
			ss.fail(endIdle, "")
		}
	}
	ss.settle()
}

// Ending reports how the conversation ended, a detail for the log, and
// whether it has.
func (ss *session) Ending() (ending, string, bool) {
	return ss.how, ss.detail, ss.ph == phEnded
}

// Close gives back what the session holds: its buffers and its place in
// the per-source limits. The session is ended.
func (ss *session) Close() {
	if ss.ph != phEnded {
		ss.fail(endError, "closed")
	}
	if ss.counted {
		ss.counted = false
		ss.srv.srcs.release(ss.client.Addr())
	}
	putBuf(ss.in)
	putBuf(ss.out)
	ss.in, ss.out, ss.delayed = nil, nil, nil
}

// stop ends the conversation once the answers already given are taken.
func (ss *session) stop(how ending, detail string) {
	ss.how, ss.detail, ss.stopping = how, detail, true
	ss.delayed = nil
}

// fail ends the conversation now; answers not taken are lost.
func (ss *session) fail(how ending, detail string) {
	ss.how, ss.detail, ss.ph = how, detail, phEnded
	ss.stopping = true
	putBuf(ss.out)
	ss.out, ss.delayed = nil, nil
}

// pendingQuote is the question in progress, for a log line.
func (ss *session) pendingQuote() string {
	if ss.q {
		return quote(ss.in)
	}
	return quote(nil)
}

// settle decides the phase after a change, and ends a conversation whose
// client half-closed once nothing it asked is left.
func (ss *session) settle() {
	if ss.ph == phEnded {
		return
	}
	backlog := len(ss.in) > 0 && !ss.q
	if ss.eof && !ss.stopping && len(ss.out) == 0 && ss.delayed == nil && !backlog {
		if len(ss.in) > 0 {
			ss.stop(endIncomplete, quote(ss.in))
		} else {
			ss.stop(endEOF, "")
		}
	}
	switch {
	case ss.stopping && len(ss.out) == 0:
		ss.ph = phEnded
	case len(ss.out) > 0:
		ss.ph = phWriting
	case ss.delayed != nil:
		ss.ph = phDelayed
	case ss.q && !ss.boundary():
		ss.ph = phQuestion
	default:
		ss.ph = phIdle
	}
}

// boundary reports whether a begun question is only whitespace while the
// server drains: no question is lost by ending there (a client that sends
// "?\n" is between questions), though the question timeout would apply
// otherwise.
func (ss *session) boundary() bool {
	return ss.draining && len(ss.in) == 0 && ss.proxy == 0
}
