package main_test

// IPv6 end to end: ":PORT" and "[::]:PORT" serve IPv4 and IPv6 on every
// engine; IPv4 clients, which reach such a socket as IPv4-mapped
// addresses, are matched by [access] and server.proxy_trusted and counted
// by the per-source limits as the IPv4 addresses they are; IPv6 clients
// are counted per limits.ipv6_prefix. Loopback only: 127.0.0.0/8 and ::1.

import (
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// needIPv6Loopback skips a test on a machine without ::1.
func needIPv6Loopback(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback here")
	}
	ln.Close()
}

// portOf returns the port of a "host:port" address.
func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// dialSrc connects to addr from the loopback address src ("" for any).
// The connection is closed when the test ends.
func dialSrc(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// exchange writes send on c and reads up to len(want) bytes back: a
// served client reads want, a refused one reads nothing (zend closes it
// without an answer). It never waits for a timeout in either case.
func exchange(c net.Conn, send, want string) string {
	io.WriteString(c, send)
	got := make([]byte, len(want))
	n, _ := io.ReadFull(c, got)
	return string(got[:n])
}

// served checks that a client sending send (a question, perhaps after a
// PROXY header) on c is answered "Ugly.".
func served(t *testing.T, what string, c net.Conn, send string) {
	t.Helper()
	if got := exchange(c, send+"Beautiful is better than?", "Ugly."); got != "Ugly." {
		t.Errorf("%s: got %q, want it served (\"Ugly.\")", what, got)
	}
}

// refusedBy checks that a client sending send on c is closed unanswered.
func refusedBy(t *testing.T, what string, c net.Conn, send string) {
	t.Helper()
	if got := exchange(c, send+"Beautiful is better than?", "Ugly."); got != "" {
		t.Errorf("%s: got %q, want it refused (closed, no answer)", what, got)
	}
}

// proxyV1 is the PROXY v1 header a proxy writes for a TCP client at src.
func proxyV1(src string) string {
	fam, dst := "TCP4", "127.0.0.1"
	if net.ParseIP(src).To4() == nil {
		fam, dst = "TCP6", "::1"
	}
	return "PROXY " + fam + " " + src + " " + dst + " 5555 1060\r\n"
}

// TestDualStackListen: "zend run -listen :PORT" (and "[::]:PORT") answers
// clients of 127.0.0.1 and of [::1] on every engine; "0.0.0.0:PORT"
// stays IPv4 only.
func TestDualStackListen(t *testing.T) {
	needIPv6Loopback(t)
	tests := []struct {
		engine, listen string
		v6             bool // [::1] is served
	}{
		{"single", ":0", true},
		{"pool", ":0", true},
		{"goroutine", ":0", true},
		{"eventloop", ":0", true},
		{"goroutine", "[::]:0", true},
		{"eventloop", "[::]:0", true},
		{"uring", ":0", true},
		{"goroutine", "0.0.0.0:0", false},
	}
	for _, tt := range tests {
		t.Run(tt.engine+"/"+tt.listen, func(t *testing.T) {
			_, addr := startZend(t, nil, "-engine", tt.engine, "-listen", tt.listen)
			port := portOf(t, addr)
			c4 := dialSrc(t, "", net.JoinHostPort("127.0.0.1", port))
			served(t, "client of 127.0.0.1", c4, "")
			c4.Close() // single and pool serve one conversation per worker
			d := net.Dialer{Timeout: 5 * time.Second}
			c6, err := d.Dial("tcp", net.JoinHostPort("::1", port))
			if !tt.v6 {
				if err == nil {
					c6.Close()
					t.Fatalf("%s serves [::1], want IPv4 only", tt.listen)
				}
				return
			}
			if err != nil {
				t.Fatalf("client of [::1]: %v", err)
			}
			defer c6.Close()
			c6.SetDeadline(time.Now().Add(10 * time.Second))
			served(t, "client of [::1]", c6, "")
		})
	}
}

// TestIPv4MappedAccess: on a dual-stack listener, [access] entries and
// server.proxy_trusted written as IPv4-mapped addresses and CIDRs match
// the IPv4 clients they name, on every engine.
func TestIPv4MappedAccess(t *testing.T) {
	needIPv6Loopback(t)
	for _, engine := range []string{"single", "pool", "goroutine", "eventloop", "uring"} {
		t.Run(engine, func(t *testing.T) {
			p, addr := startZend(t, nil, "-engine", engine, "-listen", ":0",
				"-set", "access.deny=::ffff:127.0.0.3/128, ::ffff:192.0.2.0/120",
				"-set", "server.proxy_protocol=true",
				"-set", "server.proxy_trusted=::ffff:127.0.0.1/128")
			a := net.JoinHostPort("127.0.0.1", portOf(t, addr))
			// Denied as ::ffff:127.0.0.3/128.
			refusedBy(t, "127.0.0.3", dialSrc(t, "127.0.0.3", a), "")
			// A neighbour is not.
			c := dialSrc(t, "127.0.0.2", a)
			served(t, "127.0.0.2", c, "")
			c.Close()
			// 127.0.0.1 is a trusted proxy as ::ffff:127.0.0.1/128: its header
			// names the client, who is then served...
			c = dialSrc(t, "127.0.0.1", a)
			served(t, "198.51.100.7 via the proxy", c, proxyV1("198.51.100.7"))
			c.Close()
			// ...or denied as ::ffff:192.0.2.0/120, that is 192.0.2.0/24.
			refusedBy(t, "192.0.2.66 via the proxy", dialSrc(t, "127.0.0.1", a), proxyV1("192.0.2.66"))
			p.waitLog(t, `client=198\.51\.100\.7:5555`)
			p.waitLog(t, `refused client=192\.0\.2\.66:5555 reason="denied by \[access\]`)
			// Every engine logs IPv4 clients as IPv4, not ::ffff:a.b.c.d.
			p.waitLog(t, `refused client=127\.0\.0\.3:\d+ reason="denied by \[access\]"`)
			p.waitLog(t, `msg=closed client=127\.0\.0\.2:\d+`)
		})
	}
}

// TestIPv6PrefixPerSource: limits.max_connections_per_ip = 1 counts two
// IPv6 clients of the same /64 (limits.ipv6_prefix's default) as one
// source, and another /64 as another; IPv4 clients of a dual-stack
// listener are counted per IPv4 address. The IPv6 clients are named by
// PROXY headers (the loopback has only ::1). single is left out: it
// cannot hold one client while it admits another.
func TestIPv6PrefixPerSource(t *testing.T) {
	needIPv6Loopback(t)
	for _, engine := range []string{"pool", "goroutine", "eventloop", "uring"} {
		t.Run(engine, func(t *testing.T) {
			_, addr := startZend(t, nil, "-engine", engine, "-listen", ":0",
				"-set", "server.workers=8",
				"-set", "limits.max_connections_per_ip=1",
				"-set", "server.proxy_protocol=true",
				"-set", "server.proxy_trusted=127.0.0.1")
			port := portOf(t, addr)
			a := net.JoinHostPort("127.0.0.1", port)
			// Each served client stays open: it holds its source's one slot.
			served(t, "2001:db8::1", dialSrc(t, "127.0.0.1", a), proxyV1("2001:db8::1"))
			refusedBy(t, "2001:db8::2, same /64", dialSrc(t, "127.0.0.1", a), proxyV1("2001:db8::2"))
			served(t, "2001:db8:0:1::1, another /64", dialSrc(t, "127.0.0.1", a), proxyV1("2001:db8:0:1::1"))
			// IPv4 clients arrive as ::ffff:127.0.0.x: one source each, not
			// one /64 for all of IPv4.
			served(t, "127.0.0.4", dialSrc(t, "127.0.0.4", a), "")
			served(t, "127.0.0.5", dialSrc(t, "127.0.0.5", a), "")
			refusedBy(t, "127.0.0.4 again", dialSrc(t, "127.0.0.4", a), "")
			// And ::1 directly.
			v6 := net.JoinHostPort("::1", port)
			served(t, "::1", dialSrc(t, "::1", v6), "")
			refusedBy(t, "::1 again", dialSrc(t, "::1", v6), "")
		})
	}
}

// TestInZen2DualStack: in-zen2 serves both families on the dual-stack
// socket inetd hands it ("tcp6" on [::]), and matches [access]'s
// IPv4-mapped entries against IPv4 clients.
func TestInZen2DualStack(t *testing.T) {
	needIPv6Loopback(t)
	dir := shared(t)
	cfg := filepath.Join(dir, "zend.toml")
	if err := os.WriteFile(cfg, []byte("[access]\ndeny = [\"::ffff:127.0.0.3/128\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "[::]:0") // Go's dual-stack wildcard, as inetd's tcp6
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()
	port := portOf(t, ln.Addr().String())
	startWithSocket(t, "in-zen2", lf, "-c", cfg, "-log", ownLog(t), "-timeout", "10s")
	served(t, "::1", dialSrc(t, "::1", net.JoinHostPort("::1", port)), "")
	served(t, "127.0.0.2", dialSrc(t, "127.0.0.2", net.JoinHostPort("127.0.0.1", port)), "")
	refusedBy(t, "127.0.0.3", dialSrc(t, "127.0.0.3", net.JoinHostPort("127.0.0.1", port)), "")
}
