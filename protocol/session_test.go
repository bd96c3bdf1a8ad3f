package protocol

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// op is one thing that happens to a session in a table test, at a time
// on the test's clock.
type op struct {
	at    time.Duration
	in    string // the client sends these bytes
	eof   bool   // the client half-closes
	take  int    // the client takes this many bytes of answers (slow cases); -1 all
	tick  bool   // the engine calls Tick (a deadline came)
	drain bool   // Shutdown began
	kill  bool   // the drain's deadline ended
	fail  bool   // the socket failed
	reset bool   // the client reset the connection
	check func(t *testing.T, ss *session)
}

// sessionCase is a table test of the session, with no socket: what the
// client does, what it must receive, and how the conversation must end.
type sessionCase struct {
	name   string
	st     func(st *Settings)
	peer   string // the connecting address; 192.0.2.1:4000 when empty
	slow   bool   // the client takes answers only in take ops (else all, at once)
	ops    []op
	want   string // every answer the client took, in order
	end    ending
	detail string // a substring of the ending's detail
	open   bool   // the conversation must still be going
}

func TestSession(t *testing.T) {
	const qt, it, wt = 10 * time.Second, 60 * time.Second, 5 * time.Second
	unknown := UnknownAnswer
	wantRead := func(want bool) func(*testing.T, *session) {
		return func(t *testing.T, ss *session) {
			t.Helper()
			if ss.WantRead() != want {
				t.Errorf("WantRead = %v, want %v", !want, want)
			}
		}
	}
	inPhase := func(want phase) func(*testing.T, *session) {
		return func(t *testing.T, ss *session) {
			t.Helper()
			if p, _ := ss.Phase(); p != want {
				t.Errorf("phase %d, want %d", p, want)
			}
		}
	}
	trustLocal := func(st *Settings) {
		st.Proxy = Proxy{Enabled: true, Trusted: []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")}}
	}
	v1 := "PROXY TCP4 198.51.100.7 192.0.2.9 5555 1060\r\n"
	cases := []sessionCase{
		// The chapter's exchange: one question, one answer, the client
		// hangs up between questions.
		{name: "one question", ops: []op{{in: "Beautiful is better than?"}, {eof: true}},
			want: "Ugly.", end: endEOF},
		// Questions pipelined in one read are answered in order; the empty
		// question and an unknown one get the error answer.
		{name: "pipelined", ops: []op{{in: "Simple is better than?Explicit is better than??Flat?"}, {eof: true}},
			want: "Complex.Implicit." + unknown + unknown, end: endEOF},
		// A question cut across reads is answered once whole.
		{name: "split", ops: []op{{in: "Beauti"}, {in: "ful is better", check: inPhase(phQuestion)}, {in: " than?"}, {eof: true}},
			want: "Ugly.", end: endEOF},
		// Whitespace before a question is skipped.
		{name: "whitespace", ops: []op{{in: " \t\r\n Beautiful is better than?\n"}, {eof: true}},
			want: "Ugly.", end: endEOF},
		// The question timeout counts from the first byte, and more bytes
		// do not restart it.
		{name: "drip letters", ops: []op{{in: "B"}, {at: qt - time.Millisecond, in: "e"}, {at: qt, tick: true}},
			end: endQuestionTimeout, detail: `"Be"`},
		// Whitespace is a question begun: dripping it is cut as dripping
		// letters is.
		{name: "drip spaces", ops: []op{{in: " "}, {at: qt / 2, in: " "}, {at: qt - 1, tick: true, check: inPhase(phQuestion)}, {at: qt, tick: true}},
			end: endQuestionTimeout},
		// Idle between questions: the idle timeout counts from the last
		// answer, and an early tick does nothing.
		{name: "idle", ops: []op{{at: time.Second, in: "?"}, {at: it, tick: true, check: inPhase(phIdle)}, {at: it + time.Second, tick: true}},
			want: unknown, end: endIdle},
		// A question longer than max_question_bytes ends the
		// conversation, after the answers asked before it.
		{name: "too long", ops: []op{{in: "?" + strings.Repeat("x", 1024)}},
			want: unknown, end: endTooLong, detail: "1024"},
		// Too long even when its '?' has come.
		{name: "too long with mark", ops: []op{{in: strings.Repeat("x", 1024) + "?"}},
			end: endTooLong},
		// Dripped past the limit: the fast path counts too.
		{name: "too long dripped", ops: []op{{in: strings.Repeat("x", 1000)}, {in: strings.Repeat("x", 24)}},
			end: endTooLong},
		// The client half-closes inside a question.
		{name: "incomplete", ops: []op{{in: "?Flat is"}, {eof: true}},
			want: unknown, end: endIncomplete, detail: `"Flat is"`},
		// Only whitespace before the FIN is not a question.
		{name: "whitespace then EOF", ops: []op{{in: "?\n"}, {eof: true}},
			want: unknown, end: endEOF},
		// A slow reader that half-closes after 40,000 questions gets every
		// answer: input is held back while a batch of answers waits, and
		// reading stops meanwhile.
		{name: "half-close backlog", slow: true, ops: append([]op{
			{in: strings.Repeat("?", 40000), check: func(t *testing.T, ss *session) {
				if n := len(ss.Output()); n < batchOut || n > batchOut+1024 {
					t.Errorf("%d bytes of answers wait, want a batch", n)
				}
				wantRead(false)(t, ss)
			}},
			{eof: true, check: inPhase(phWriting)}},
			repeatOp(op{take: -1}, 40)...),
			want: strings.Repeat(unknown, 40000), end: endEOF},
		// Answers the client does not take end the conversation after the
		// write timeout; progress restarts it.
		{name: "write timeout", slow: true, ops: []op{
			{in: "??"}, {at: wt - 1, take: 3}, {at: wt, tick: true, check: inPhase(phWriting)}, {at: 2*wt - 1, tick: true}},
			want: unknown[:3], end: endWriteTimeout},
		// answer_delay: each answer waits it out, reading stops meanwhile,
		// and the next question waits its turn.
		{name: "answer delay", st: func(st *Settings) { st.AnswerDelay = time.Second }, ops: []op{
			{in: "Beautiful is better than?Simple is better than?", check: wantRead(false)},
			{at: time.Second - 1, tick: true, check: inPhase(phDelayed)},
			{at: time.Second, tick: true, check: inPhase(phDelayed)},
			{at: 2 * time.Second, tick: true, check: wantRead(true)},
			{eof: true}},
			want: "Ugly.Complex.", end: endEOF},
		// A FIN while an answer waits out answer_delay: it is still given.
		{name: "delay then EOF", st: func(st *Settings) { st.AnswerDelay = time.Second }, ops: []op{
			{in: "?"}, {eof: true, check: inPhase(phDelayed)}, {at: time.Second, tick: true}},
			want: unknown, end: endEOF},
		// The drain ends a quiet conversation at its question boundary.
		{name: "drain idle", ops: []op{{in: "?"}, {drain: true}, {at: drainPoll - 1, tick: true, check: inPhase(phIdle)}, {at: drainPoll, tick: true}},
			want: unknown, end: endDrained},
		// A question in progress is finished during the drain.
		{name: "drain mid-question", ops: []op{{in: "Simple is"}, {drain: true}, {at: time.Second, tick: true}, {at: time.Second, in: " better than?"}, {at: time.Second + drainPoll, tick: true}},
			want: "Complex.", end: endDrained},
		// A newline after the last answer (as nc sends it) is not a
		// question in progress: the drain ends the conversation there
		// (seen: it was cut at the drain's deadline).
		{name: "drain after a newline", ops: []op{{in: "Simple is better than?\n"}, {drain: true}, {at: drainPoll, tick: true}},
			want: "Complex.", end: endDrained},
		// Spaces that arrive during the drain do not hold it either.
		{name: "drain then spaces", ops: []op{{in: "?"}, {drain: true}, {at: drainPoll / 2, in: "  "}, {at: drainPoll, tick: true}},
			want: unknown, end: endDrained},
		// Idle counts from when the client has taken its answers, not
		// from when they were framed (seen: a slow reader that had just
		// taken its answers was closed as idle at once).
		{name: "idle after a slow delivery", slow: true, ops: []op{
			{in: "??"}, {at: it + time.Second, take: -1}, {at: it + time.Second, tick: true, check: inPhase(phIdle)}, {at: 2*it + time.Second, tick: true}},
			want: unknown + unknown, end: endIdle},
		// The drain's deadline cuts what is left, naming the question.
		{name: "kill", ops: []op{{in: "Simple is"}, {drain: true}, {kill: true}},
			end: endCut, detail: `"Simple is"`},
		// A socket error is an error, naming the question in progress.
		{name: "error", ops: []op{{in: "Flat"}, {fail: true}},
			end: endError, detail: `broken pipe after "Flat"`},
		// A socket error while answers wait: they are dropped, and no
		// engine is left with bytes to write on a dead socket.
		{name: "error while writing", slow: true, ops: []op{{in: strings.Repeat("?", 4000)}, {fail: true, check: func(t *testing.T, ss *session) {
			if n := len(ss.Output()); n != 0 {
				t.Errorf("%d bytes still to write after the failure", n)
			}
		}}}, end: endError},
		// A trusted proxy's header names the client; the question after
		// it in the same read is answered.
		{name: "proxy v1", st: trustLocal, ops: []op{{in: v1 + "Simple is better than?", check: func(t *testing.T, ss *session) {
			if got := ss.client.String(); got != "198.51.100.7:5555" {
				t.Errorf("client %s, want the header's", got)
			}
		}}, {eof: true}},
			want: "Complex.", end: endEOF},
		// A header cut across reads.
		{name: "proxy split", st: trustLocal, ops: []op{{in: v1[:9]}, {in: v1[9:]}, {in: "?"}, {eof: true}},
			want: unknown, end: endEOF},
		// A LOCAL header is the proxy's own health check: served, and
		// logged at debug only.
		{name: "proxy health check", st: trustLocal, ops: []op{{in: "\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00Beautiful is better than?", check: func(t *testing.T, ss *session) {
			if !ss.check {
				t.Error("a LOCAL header is not taken as a health check")
			}
		}}, {reset: true}},
			want: "Ugly.", end: endReset},
		// A reset between questions, every answer taken, is how many
		// clients hang up: not an error.
		{name: "reset after the answers", ops: []op{{in: "?"}, {reset: true}},
			want: unknown, end: endReset},
		// A reset inside a question is an error, naming it.
		{name: "reset mid-question", ops: []op{{in: "?Flat"}, {reset: true}},
			want: unknown, end: endError, detail: `reset by peer after "Flat"`},
		// A trusted proxy need not send a header.
		{name: "proxy none", st: trustLocal, ops: []op{{in: "?"}, {eof: true}},
			want: unknown, end: endEOF},
		// A trusted proxy's header must come within question_timeout.
		{name: "proxy silent", st: trustLocal, ops: []op{{at: qt, tick: true}},
			end: endQuestionTimeout},
		// A header from anyone else is refused.
		{name: "proxy untrusted", peer: "203.0.113.5:4000", st: trustLocal, ops: []op{{in: v1 + "?"}},
			end: endRefused},
		// A malformed header is refused.
		{name: "proxy malformed", st: trustLocal, ops: []op{{in: "PROXY TCP4 nonsense\r\n?"}},
			end: endRefused},
		// A question that starts like a header is a question.
		{name: "proxy-like question", peer: "203.0.113.5:4000", st: trustLocal, ops: []op{{in: "PROXY is?"}, {eof: true}},
			want: unknown, end: endEOF},
		// A long question starting "PROXY " from a peer that is not a
		// trusted proxy is answered however TCP splits it (seen: refused
		// as an overlong header when its '?' came in a later segment).
		{name: "long proxy-like question split", peer: "203.0.113.5:4000", st: trustLocal, ops: []op{
			{in: "PROXY " + strings.Repeat("a", 120)}, {in: "?"}, {eof: true}},
			want: unknown, end: endEOF},
		// From a trusted proxy the same bytes are a malformed header,
		// whole or split.
		{name: "long proxy-like line from the proxy", st: trustLocal, ops: []op{
			{in: "PROXY " + strings.Repeat("a", 120)}, {in: "?"}},
			end: endRefused},
		{name: "long proxy-like line from the proxy, whole", st: trustLocal, ops: []op{
			{in: "PROXY " + strings.Repeat("a", 120) + "?"}},
			end: endRefused},
		// [access] refuses before a byte is read.
		{name: "denied", st: func(st *Settings) {
			st.Access = &Access{Deny: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}
		}, ops: []op{{in: "?"}}, end: endRefused},
		// [access] applies to the client a trusted proxy names.
		{name: "denied via proxy", st: func(st *Settings) {
			trustLocal(st)
			st.Access = &Access{Deny: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}}
		}, ops: []op{{in: v1 + "?"}}, end: endRefused},
		// A conversation with nothing due stays open.
		{name: "open", ops: []op{{in: "?"}, {at: it - 1, tick: true}}, want: unknown, open: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			runSessionCase(t, tc)
		})
	}
}

// repeatOp returns n copies of o.
func repeatOp(o op, n int) []op {
	ops := make([]op, n)
	for i := range ops {
		ops[i] = o
	}
	return ops
}

func runSessionCase(t *testing.T, tc sessionCase) {
	t.Helper()
	st := Settings{Limits: Limits{MaxQuestionBytes: 1024, QuestionTimeout: 10 * time.Second,
		IdleTimeout: 60 * time.Second, WriteTimeout: 5 * time.Second}}
	if tc.st != nil {
		tc.st(&st)
	}
	srv, err := NewServer(EngineGoroutine, 1, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	sp := srv.settings.Load()
	peer := netip.MustParseAddrPort("192.0.2.1:4000")
	if tc.peer != "" {
		peer = netip.MustParseAddrPort(tc.peer)
	}
	const t0 = int64(time.Hour) // the test's clock starts here
	var ss session
	ss.start(srv, peer, t0, sp)
	defer ss.Close()
	var got bytes.Buffer
	take := func(now int64, n int) {
		out := ss.Output()
		if n < 0 || n > len(out) {
			n = len(out)
		}
		got.Write(out[:n])
		ss.Wrote(now, n, sp)
	}
	for i, o := range tc.ops {
		now := t0 + int64(o.at)
		switch {
		case o.in != "":
			ss.Input(now, []byte(o.in), sp)
		case o.eof:
			ss.EOF()
		case o.tick:
			ss.Tick(now, sp)
		case o.drain:
			ss.Drain()
		case o.kill:
			ss.Kill()
		case o.fail:
			ss.Fail(errors.New("broken pipe"))
		case o.reset:
			ss.Fail(&net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)})
		}
		if o.take != 0 {
			take(now, o.take)
		}
		if !tc.slow {
			for len(ss.Output()) > 0 {
				take(now, -1)
			}
		}
		if o.check != nil {
			o.check(t, &ss)
		}
		if t.Failed() {
			t.Fatalf("after op %d", i)
		}
	}
	if got.String() != tc.want {
		t.Errorf("answers %q, want %q", clipString(got.String()), clipString(tc.want))
	}
	how, detail, done := ss.Ending()
	switch {
	case tc.open && done:
		t.Errorf("ended (%d %q), want it open", how, detail)
	case !tc.open && !done:
		t.Errorf("still open, want ending %d", tc.end)
	case !tc.open && how != tc.end:
		t.Errorf("ending %d (%q), want %d", how, detail, tc.end)
	case !strings.Contains(detail, tc.detail):
		t.Errorf("detail %q, want it to contain %q", detail, tc.detail)
	}
}

func clipString(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
