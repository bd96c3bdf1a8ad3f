//go:build linux

package protocol

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestURingAcceptBackoff: out of file descriptors, the uring engine backs
// off (with a log line) instead of spinning, and serves again once
// descriptors free. The kernel reads RLIMIT_NOFILE when an
// accept is armed, so the limit is lowered (for this test process, which
// holds the clients too) before the server starts.
func TestURingAcceptBackoff(t *testing.T) {
	if err := urProbe(); err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	// Room for the server's own descriptors (the listener, two rings,
	// two eventfds and their duplicates) and 40 more.
	low := old
	low.Cur = uint64(len(ents) + 10 + 40)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
	srv, addr, lb := startLogged(t, EngineURing, Settings{})
	// Clients and the server's side share the limit: dial until it is
	// reached (the server accepts as they come, until it cannot).
	var conns []net.Conn
	for i := 0; i < 40; i++ {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	waitFor(t, func() bool { return strings.Contains(lb.String(), "accept error, backing off") })
	if !strings.Contains(lb.String(), "too many open files") {
		t.Fatalf("backoff without the reason:\n%s", lb.String())
	}
	// Backing off, not spinning: the retries double from 5 ms up to 1 s,
	// so a few dozen lines at most while the clients wait.
	if n := strings.Count(lb.String(), "accept error, backing off"); n > 50 {
		t.Fatalf("%d backoff lines: the accept is retried in a loop", n)
	}
	for _, c := range conns {
		c.Close()
	}
	syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	// Descriptors free: the server accepts and answers again.
	c := dial(t, addr)
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := make([]byte, 5)
	c.Write([]byte("Beautiful is better than?"))
	if _, err := c.Read(r); err != nil || string(r) != "Ugly." {
		t.Fatalf("after the backoff: %q %v", r, err)
	}
	_ = srv
}

// TestDefaultLoops: server.workers = 0 gives both loop engines one loop
// per two CPUs (at least one).
func TestDefaultLoops(t *testing.T) {
	for _, tt := range []struct {
		e          Engine
		cpus, want int
	}{
		{EngineURing, 1, 1},     // one CPU, one loop
		{EngineURing, 2, 1},     // half
		{EngineURing, 64, 32},   // ... however many
		{EngineEventLoop, 1, 1}, // never none
		{EngineEventLoop, 2, 1}, // half
		{EngineEventLoop, 3, 1}, // half, rounded down
		{EngineEventLoop, 64, 32},
	} {
		if got := defaultLoops(tt.e, tt.cpus); got != tt.want {
			t.Errorf("defaultLoops(%s, %d) = %d, want %d", tt.e, tt.cpus, got, tt.want)
		}
	}
}

// TestDrainClientClosesInLinger: a client that hangs up while a drained
// connection lingers ends the linger, and Shutdown returns without
// waiting for its deadline, on every engine that lingers. (Seen on
// uring: the connection's slot was freed twice and the loop never
// exited, not even at the drain's deadline.)
func TestDrainClientClosesInLinger(t *testing.T) {
	for _, e := range concurrentEngines {
		t.Run(string(e), func(t *testing.T) {
			srv, addr := startServer(t, e, 0, Settings{})
			c := dial(t, addr)
			r := bufio.NewReader(c)
			ask(t, c, r, "Beautiful is better than?", "Ugly.")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			done := make(chan error, 1)
			go func() { _, err := srv.Shutdown(ctx); done <- err }()
			if b, err := r.ReadByte(); err != io.EOF {
				t.Fatalf("want the server's FIN, got %q %v", b, err)
			}
			c.Close() // hang up while the server lingers
			if err := <-done; err != nil {
				t.Fatalf("Shutdown: %v, want nil: the linger should end with the client", err)
			}
		})
	}
}

// TestMaxConnectionsBacklogStays: above max_connections clients wait in
// the kernel's backlog, not in the server: as slots free, the server
// takes only as many as it can serve. (Seen on uring with a multishot
// accept: the whole backlog accepted and held, 1,965 descriptors for
// max_connections = 50.)
func TestMaxConnectionsBacklogStays(t *testing.T) {
	for _, e := range concurrentEngines {
		t.Run(string(e), func(t *testing.T) {
			lim := testLimits()
			lim.MaxConnections = 5
			srv, addr := startServer(t, e, 0, Settings{Limits: lim})
			var served []net.Conn
			for i := 0; i < 5; i++ {
				c := dial(t, addr)
				ask(t, c, bufio.NewReader(c), "Simple is better than?", "Complex.")
				served = append(served, c)
			}
			for i := 0; i < 60; i++ {
				dial(t, addr) // waits in the backlog
			}
			for _, c := range served[:3] {
				c.Close()
			}
			waitFor(t, func() bool { return srv.Stats().Total >= 8 })
			// Let a greedy accept show itself: a few rounds of the loops.
			time.Sleep(200 * time.Millisecond)
			if got := srv.Stats().Total; got != 8 {
				t.Fatalf("accepted %d connections after 3 slots freed, want 8", got)
			}
			if n := sockets(t); n > 5+60+3+10 {
				t.Fatalf("%d sockets open in the test process: the server holds clients beyond max_connections", n)
			}
		})
	}
}

// sockets counts this process's open sockets.
func sockets(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}
