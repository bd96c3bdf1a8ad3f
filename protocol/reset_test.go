package protocol

import (
	"bytes"
	"net"
	"testing"
	"time"
)

// TestResetWhileAnswersWait: clients that ask a lot, never read, and then
// reset the connection leave nothing behind on any engine: each
// conversation ends (seen: the event loop spun on a dead socket forever,
// writing answers a failed session still held).
func TestResetWhileAnswersWait(t *testing.T) {
	for _, e := range engines {
		if e.engine == EngineSingle || e.engine == EnginePool {
			continue // they serve a client at a time: the others wait unread
		}
		t.Run(string(e.engine), func(t *testing.T) {
			lim := testLimits()
			lim.SendBuffer = 4096
			srv, addr := startServer(t, e.engine, e.workers, Settings{Limits: lim})
			const clients = 20
			for i := 0; i < clients; i++ {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				c.SetWriteDeadline(time.Now().Add(2 * time.Second))
				c.Write(bytes.Repeat([]byte("?"), 64<<10)) // stops when the server stops reading
				c.(*net.TCPConn).SetLinger(0)
				c.Close() // RST: the server's answers cannot be delivered
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				st := srv.Stats()
				if st.Total == clients && st.Open == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("conversations still open after every client reset: %+v", st)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
