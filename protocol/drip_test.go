package protocol

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestDripIsCut: a client that drips a byte before a question just often
// enough to stay under the idle timeout is cut at the question timeout,
// whether it drips letters or whitespace (which is skipped before a
// question, but is still a question begun), on every engine.
func TestDripIsCut(t *testing.T) {
	for _, drip := range []string{"x", " ", "\n"} {
		for _, e := range engines {
			t.Run(string(e.engine)+"/"+strings.ReplaceAll(drip, "\n", "LF"), func(t *testing.T) {
				lim := testLimits()
				lim.QuestionTimeout = 300 * time.Millisecond
				lim.IdleTimeout = time.Hour
				_, addr, lb := startLogged(t, e.engine, Settings{Limits: lim})
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				me := c.LocalAddr().String()
				closed := make(chan struct{})
				go func() {
					defer close(closed)
					io.Copy(io.Discard, c)
				}()
				// Drip for at most 50 question timeouts: the test's
				// scenario, not a wait for the server.
				for i := 0; i < 750; i++ {
					select {
					case <-closed:
						i = 750
						continue
					default:
					}
					if _, err := io.WriteString(c, drip); err != nil {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				select {
				case <-closed:
				default:
					t.Fatalf("a client dripping %q was not cut", drip)
				}
				waitFor(t, func() bool {
					for _, line := range strings.Split(lb.String(), "\n") {
						if strings.Contains(line, me) && strings.Contains(line, "question timeout, closed") {
							return true
						}
					}
					return false
				})
			})
		}
	}
}

// TestProxyLikeQuestion: with the PROXY protocol on, a question from a
// peer that is not a trusted proxy and that starts with "PROXY " is a
// question (a header has no '?'), answered at once on every engine.
func TestProxyLikeQuestion(t *testing.T) {
	for _, e := range engines {
		t.Run(string(e.engine), func(t *testing.T) {
			lim := testLimits()
			lim.QuestionTimeout = time.Hour
			st := Settings{Limits: lim, Proxy: Proxy{Enabled: true, Trusted: prefixes(t, "10.9.8.7/32")}}
			_, addr, _ := startLogged(t, e.engine, st)
			c := dial(t, addr)
			c.SetDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "PROXY is better than?")
			got := make([]byte, len(UnknownAnswer))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != UnknownAnswer {
				t.Fatalf("answer %q, %v; want %q at once", got, err, UnknownAnswer)
			}
		})
	}
}

// TestDrainAfterNewline: a client that ends its question with a newline
// (as nc sends it) is between questions: Shutdown finishes it at that
// boundary instead of cutting it at the deadline, on every engine.
func TestDrainAfterNewline(t *testing.T) {
	for _, e := range engines {
		t.Run(string(e.engine), func(t *testing.T) {
			srv, addr := startServer(t, e.engine, e.workers, Settings{})
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			r := bufio.NewReader(c)
			ask(t, c, r, "Simple is better than?\n", "Complex.")
			waitFor(t, func() bool { return srv.Stats().Open == 1 })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := srv.Shutdown(ctx)
			if err != nil || res.Cut != 0 || res.Finished != 1 {
				t.Fatalf("Shutdown = %+v, %v; want it finished at its question boundary", res, err)
			}
		})
	}
}
