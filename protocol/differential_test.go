package protocol

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// stream is one random conversation: what the client sends, in which
// pieces, and how it ends.
type stream struct {
	pieces    [][]byte
	halfClose bool // shutdown(SHUT_WR) after the last piece, then read to EOF
	reset     bool // close with SO_LINGER 0 (RST) after the last piece, reading nothing
	readChunk int  // how much the client reads at a time
	rcvbuf    int  // the client's SO_RCVBUF, 0 for the kernel's
}

// randomStream builds the stream of seed: known and unknown questions,
// whitespace before them, a question cut at its end, bytes of every value;
// split at random points.
func randomStream(seed uint64) stream {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	var b bytes.Buffer
	if seed%15 == 0 {
		// Volume: more answers than a batch, so the engines must keep
		// input back and go on after the client's FIN.
		b.WriteString(strings.Repeat("?", 20000+rng.IntN(20000)))
	}
	for n := rng.IntN(40); n > 0; n-- {
		switch rng.IntN(6) {
		case 0:
			b.WriteString("Beautiful is better than?")
		case 1:
			b.WriteString("Simple is better than?")
		case 2:
			b.WriteString(" \t\r\nExplicit is better than?")
		case 3:
			b.WriteString("?")
		case 4:
			b.WriteString(strings.Repeat(" ", rng.IntN(5)) + "\n")
		default:
			for k := rng.IntN(20); k > 0; k-- {
				b.WriteByte(byte(rng.IntN(256)))
			}
			b.WriteByte('?')
		}
	}
	if rng.IntN(3) == 0 {
		b.WriteString("Flat is better") // a question the client never ends
	}
	data := b.Bytes()
	s := stream{readChunk: 1 + rng.IntN(64)}
	if seed%15 == 0 {
		s.readChunk, s.rcvbuf = 64+rng.IntN(512), 1024 // a slow reader
	}
	for len(data) > 0 {
		k := 1 + rng.IntN(min(len(data), 1+rng.IntN(48)))
		if len(data) > 4096 {
			k = 1 + rng.IntN(4096)
		}
		s.pieces = append(s.pieces, data[:k])
		data = data[k:]
	}
	switch rng.IntN(4) {
	case 0:
		s.reset = true
	default:
		s.halfClose = true
	}
	return s
}

// outcome is what a stream got from an engine: the answers and how the
// server said the conversation ended.
type outcome struct {
	answers string
	ending  string
}

// endings are the log messages a conversation ends with (logEnd).
var endingRx = regexp.MustCompile(`msg="?(closed|incomplete question then closed|question too long, closed|connection error|closed at shutdown)"?`)

// play runs s against addr and returns what came back and the ending the
// server logged for this client.
func play(t *testing.T, addr string, lb *logBuffer, s stream) outcome {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
		if s.rcvbuf > 0 {
			rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, s.rcvbuf) })
		}
		return nil
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	me := c.LocalAddr().String()
	var got bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		if s.reset {
			return
		}
		buf := make([]byte, s.readChunk)
		for {
			n, err := c.Read(buf)
			got.Write(buf[:n])
			if err != nil {
				return
			}
		}
	}()
	for _, p := range s.pieces {
		if _, err := c.Write(p); err != nil {
			break
		}
	}
	if s.reset {
		// Everything written is delivered before the RST only if the
		// server has read it: wait for the answers to the complete
		// questions, then reset.
		want := reference(s)
		buf := make([]byte, len(want.answers))
		io.ReadFull(c, buf)
		got.Write(buf)
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	} else {
		c.(*net.TCPConn).CloseWrite()
	}
	<-done
	var ending string
	for end := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("no ending logged for client %s within 10 s; log:\n%s", me, lb.String())
		}
		for _, line := range strings.Split(lb.String(), "\n") {
			if strings.Contains(line, "client="+me) || strings.Contains(line, "client=\""+me) {
				if m := endingRx.FindStringSubmatch(line); m != nil {
					ending = m[1]
				}
			}
		}
		if ending != "" {
			break
		}
	}
	return outcome{answers: got.String(), ending: ending}
}

// reference is what the protocol says a stream gets: an answer for each
// complete question, in order, and the ending the conversation must have.
func reference(s stream) outcome {
	data := bytes.Join(s.pieces, nil)
	answers := NewAnswers(nil)
	var out bytes.Buffer
	ending := "closed"
	for {
		start, end, err := Split(data, testLimits().MaxQuestionBytes)
		if err != nil {
			return outcome{answers: out.String(), ending: "question too long, closed"}
		}
		if end < 0 {
			if len(data[start:]) > 0 {
				ending = "incomplete question then closed"
			}
			break
		}
		out.Write(answers.Answer(data[start:end]))
		data = data[end:]
	}
	if s.reset {
		ending = "" // any of "closed", an error, or incomplete: the RST races the read
	}
	return outcome{answers: out.String(), ending: ending}
}

// TestDifferential sends the same random streams, split at random points,
// half-closed or reset, read in random chunks, to every engine: each must
// give the answers the protocol says, byte for byte, and end the
// conversation the same way. The seeds are fixed, so a failure names the
// one to replay.
func TestDifferential(t *testing.T) {
	const seeds = 60
	for _, e := range engines {
		t.Run(string(e.engine), func(t *testing.T) {
			_, addr, lb := startLogged(t, e.engine, Settings{})
			for seed := uint64(1); seed <= seeds; seed++ {
				s := randomStream(seed)
				want := reference(s)
				got := play(t, addr, lb, s)
				if got.answers != want.answers {
					t.Errorf("seed %d: answers differ:\n got %q\nwant %q", seed, got.answers, want.answers)
				}
				if want.ending != "" && got.ending != want.ending {
					t.Errorf("seed %d: ending %q, want %q", seed, got.ending, want.ending)
				}
			}
		})
	}
}
