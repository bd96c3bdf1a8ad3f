package protocol

import (
	"bytes"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestHalfCloseSlowReader: a client with a small receive buffer pipelines
// many questions, half-closes (shutdown SHUT_WR) and then reads slowly:
// every question was complete before the FIN, so every one is answered,
// on every engine, before the server closes.
func TestHalfCloseSlowReader(t *testing.T) {
	const questions = 200000
	want := []byte(UnknownAnswer)
	for _, e := range []Engine{EngineSingle, EnginePool, EngineGoroutine, EngineEventLoop, EngineURing} {
		t.Run(string(e), func(t *testing.T) {
			_, addr := startServer(t, e, 0, Settings{})
			d := net.Dialer{Timeout: 5 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) {
					syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1024)
				})
			}}
			c, err := d.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			sent := make(chan error, 1)
			go func() {
				_, err := c.Write(bytes.Repeat([]byte("?"), questions))
				if err == nil {
					err = c.(*net.TCPConn).CloseWrite()
				}
				sent <- err
			}()
			var got int
			buf := make([]byte, 1024)
			var rest []byte
			for {
				n, err := c.Read(buf)
				rest = append(rest, buf[:n]...)
				for len(rest) >= len(want) {
					if !bytes.Equal(rest[:len(want)], want) {
						t.Fatalf("answer %d is %q", got, rest[:len(want)])
					}
					rest = rest[len(want):]
					got++
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("after %d answers: %v", got, err)
				}
			}
			if err := <-sent; err != nil {
				t.Fatalf("send: %v", err)
			}
			if got != questions || len(rest) != 0 {
				t.Fatalf("%d answers (and %d stray bytes) for %d questions", got, len(rest), questions)
			}
		})
	}
}
