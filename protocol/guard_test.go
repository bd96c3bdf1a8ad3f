package protocol

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pires/go-proxyproto"
)

func prefixes(t *testing.T, ss ...string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	return out
}

func TestAccessPermit(t *testing.T) {
	a := &Access{Allow: prefixes(t, "127.0.0.3/32", "2001:db8::/32"), Deny: prefixes(t, "127.0.0.0/8", "::/0")}
	tests := []struct {
		ip   string
		want bool
	}{
		{"127.0.0.3", true},        // allow matches first
		{"127.0.0.2", false},       // then deny
		{"192.0.2.1", true},        // default allow
		{"2001:db8::1", true},      // IPv6 allow
		{"2001:db9::1", false},     // IPv6 deny
		{"::ffff:127.0.0.3", true}, // IPv4-mapped is the IPv4 address
	}
	for _, tt := range tests {
		if got := a.Permit(netip.MustParseAddr(tt.ip)); got != tt.want {
			t.Errorf("Permit(%s) = %v, want %v", tt.ip, got, tt.want)
		}
	}
	if !(*Access)(nil).Permit(netip.MustParseAddr("10.0.0.1")) {
		t.Error("nil Access refuses")
	}
}

// logBuffer collects a server's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startLogged is startServer with a log that the test reads.
func startLogged(t *testing.T, engine Engine, st Settings) (*Server, string, *logBuffer) {
	t.Helper()
	if st.Limits == (Limits{}) {
		st.Limits = testLimits()
	}
	lb := &logBuffer{}
	srv, err := NewServer(engine, 2, st, slog.New(slog.NewTextHandler(lb, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return srv, ln.Addr().String(), lb
}

// dialFrom connects to addr from a given loopback source address.
func dialFrom(t *testing.T, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

// refused checks that c is closed without an answer.
func refused(t *testing.T, c net.Conn) {
	t.Helper()
	io.WriteString(c, "Simple is better than?")
	if b, _ := io.ReadAll(c); len(b) != 0 {
		t.Fatalf("refused client got %q", b)
	}
}

func served(t *testing.T, c net.Conn) {
	t.Helper()
	ask(t, c, bufio.NewReader(c), "Simple is better than?", "Complex.")
}

func TestAccessControlAndReload(t *testing.T) {
	for _, e := range concurrentEngines {
		t.Run(string(e), func(t *testing.T) {
			st := Settings{Access: &Access{Allow: prefixes(t, "127.0.0.3/32"), Deny: prefixes(t, "127.0.0.0/8")}}
			srv, addr, lb := startLogged(t, e, st)
			served(t, dialFrom(t, "127.0.0.3", addr))
			refused(t, dialFrom(t, "127.0.0.2", addr))
			// A flood of refused clients is logged a bounded number of times.
			for i := 0; i < 200; i++ {
				c := dialFrom(t, "127.0.0.2", addr)
				c.Read(make([]byte, 1))
				c.Close()
			}
			if n := strings.Count(lb.String(), "msg=refused"); n > refusalBurst+2 {
				t.Errorf("%d refusal lines for 201 refusals, want at most about %d", n, refusalBurst)
			}
			// Reloadable: lift the deny.
			st2 := srv.Settings()
			st2.Access = nil
			srv.Update(st2)
			served(t, dialFrom(t, "127.0.0.2", addr))
		})
	}
}

func TestPerSourceLimits(t *testing.T) {
	for _, e := range concurrentEngines {
		t.Run(string(e), func(t *testing.T) {
			lim := testLimits()
			lim.MaxConnectionsPerIP = 2
			_, addr, _ := startLogged(t, e, Settings{Limits: lim})
			a, b := dialFrom(t, "127.0.0.4", addr), dialFrom(t, "127.0.0.4", addr)
			served(t, a)
			served(t, b)
			refused(t, dialFrom(t, "127.0.0.4", addr)) // a third from the same source
			served(t, dialFrom(t, "127.0.0.5", addr))  // another source is fine
			a.Close()
			// A slot frees once the server has seen a's end: until then
			// a new client from the source is refused, after it served.
			var got string
			for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				c := dialFrom(t, "127.0.0.4", addr)
				io.WriteString(c, "Simple is better than?")
				b, _ := io.ReadAll(io.LimitReader(c, int64(len("Complex."))))
				c.Close()
				if got = string(b); got == "Complex." {
					break
				}
				if time.Now().After(end) {
					t.Fatalf("no slot freed for 127.0.0.4 within 10 s of a client closing; last answer %q", got)
				}
			}
		})
		t.Run(string(e)+"/rate", func(t *testing.T) {
			lim := testLimits()
			lim.AcceptRatePerIP = 5
			_, addr, _ := startLogged(t, e, Settings{Limits: lim})
			ok := 0
			for i := 0; i < 20; i++ {
				c := dialFrom(t, "127.0.0.6", addr)
				io.WriteString(c, "?")
				if b, _ := io.ReadAll(io.LimitReader(c, int64(len(UnknownAnswer)))); len(b) > 0 {
					ok++
				}
				c.Close()
			}
			if ok < 5 || ok > 7 {
				t.Fatalf("%d of 20 quick connections served at 5 a second, want about 5", ok)
			}
		})
	}
}

func proxyV2(t *testing.T, src string, local bool) []byte {
	t.Helper()
	h := proxyproto.HeaderProxyFromAddrs(2, &net.TCPAddr{IP: net.ParseIP(src), Port: 4000}, &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 1060})
	if local {
		h.Command = proxyproto.LOCAL
	}
	b, err := h.Format()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestProxyProtocol(t *testing.T) {
	for _, e := range concurrentEngines {
		t.Run(string(e), func(t *testing.T) {
			st := Settings{
				Proxy:  Proxy{Enabled: true, Trusted: prefixes(t, "127.0.0.1/32")},
				Access: &Access{Deny: prefixes(t, "203.0.113.0/24")},
			}
			_, addr, lb := startLogged(t, e, st)
			// v1 from the trusted proxy, the header split across writes.
			c := dialFrom(t, "127.0.0.1", addr)
			io.WriteString(c, "PROXY TCP4 198.51.100.7 127.0.0.1 5555 1060")
			time.Sleep(20 * time.Millisecond) // two segments: the behaviour under test, not a wait
			io.WriteString(c, "\r\nBeautiful is better than?")
			got := make([]byte, 5)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "Ugly." {
				t.Fatalf("after a v1 header: %q %v", got, err)
			}
			// v2, and the log names the real client.
			c2 := dialFrom(t, "127.0.0.1", addr)
			c2.Write(append(proxyV2(t, "192.0.2.9", false), "Simple is better than?"...))
			got = make([]byte, 8)
			if _, err := io.ReadFull(c2, got); err != nil || string(got) != "Complex." {
				t.Fatalf("after a v2 header: %q %v", got, err)
			}
			// A LOCAL header (HAProxy's health check) is served as the proxy.
			c3 := dialFrom(t, "127.0.0.1", addr)
			c3.Write(append(proxyV2(t, "192.0.2.10", true), "Simple is better than?"...))
			if _, err := io.ReadFull(c3, got); err != nil || string(got) != "Complex." {
				t.Fatalf("after a LOCAL header: %q %v", got, err)
			}
			// Access control applies to the real client.
			c4 := dialFrom(t, "127.0.0.1", addr)
			c4.Write(proxyV2(t, "203.0.113.5", false))
			refused(t, c4)
			// The trusted proxy without a header is a client itself.
			served(t, dialFrom(t, "127.0.0.1", addr))
			// A header from a peer that is not trusted is refused; without
			// one that peer is served.
			c5 := dialFrom(t, "127.0.0.7", addr)
			c5.Write(proxyV2(t, "192.0.2.11", false))
			refused(t, c5)
			served(t, dialFrom(t, "127.0.0.7", addr))
			// Garbage after the v1 signature is refused.
			c6 := dialFrom(t, "127.0.0.1", addr)
			io.WriteString(c6, "PROXY NONSENSE\r\n")
			refused(t, c6)
			var missing []string
			for end := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				log := lb.String()
				missing = missing[:0]
				for _, want := range []string{"client=198.51.100.7:5555", "client=192.0.2.9:4000", "client=203.0.113.5:4000", "not in server.proxy_trusted"} {
					if !strings.Contains(log, want) {
						missing = append(missing, want)
					}
				}
				if len(missing) == 0 {
					break
				}
				if time.Now().After(end) {
					t.Fatalf("log lacks %q after 10 s:\n%s", missing, log)
				}
			}
		})
	}
}

// FuzzProxyHeader feeds arbitrary first bytes to the PROXY header path:
// it must never panic, never claim more bytes than it has, and whatever it
// calls a whole header must parse or be refused with ErrProxyHeader.
func FuzzProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 198.51.100.7 127.0.0.1 5555 1060\r\nBeautiful is better than?"))
	f.Add([]byte("PROXY TCP6 2001:db8::1 ::1 5555 1060\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc6\x33\x64\x07\x7f\x00\x00\x01\x15\xb3\x04\x24"))
	f.Add([]byte("\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"))
	f.Add([]byte("Simple is better than?"))
	f.Add([]byte("\r\nSimple is better than?"))
	f.Add([]byte("PROXY " + strings.Repeat("a", 120) + "?"))
	peer := netip.MustParseAddrPort("127.0.0.1:1")
	f.Fuzz(func(t *testing.T, b []byte) {
		n, more, err := splitProxyHeader(b)
		if n < 0 || n > len(b) || (n > 0 && (more || err != nil)) {
			t.Fatalf("splitProxyHeader(%q) = %d, %v, %v", b, n, more, err)
		}
		// However TCP splits the bytes, a decision taken on a prefix is
		// the decision on the whole.
		for k := 0; k < len(b); k++ {
			pn, pmore, perr := splitProxyHeader(b[:k])
			if !pmore && (more || pn != n || (perr == nil) != (err == nil)) {
				t.Fatalf("splitProxyHeader(%q) = %d, %v, %v, but on its first %d bytes %d, %v", b, n, more, err, k, pn, perr)
			}
		}
		if n > 0 {
			if _, _, err := parseProxyHeader(b[:n], peer); err != nil && !errors.Is(err, ErrProxyHeader) {
				t.Fatalf("parse error not ErrProxyHeader: %v", err)
			}
		}
	})
}

func TestMetricsCount(t *testing.T) {
	for _, e := range concurrentEngines {
		t.Run(string(e), func(t *testing.T) {
			srv, addr, _ := startLogged(t, e, Settings{Access: &Access{Deny: prefixes(t, "127.0.0.9/32")}})
			c := dialFrom(t, "127.0.0.1", addr)
			r := bufio.NewReader(c)
			ask(t, c, r, "Beautiful is better than?Beautiful is better than?", "Ugly.Ugly.")
			ask(t, c, r, "??", UnknownAnswer+UnknownAnswer)
			refused(t, dialFrom(t, "127.0.0.9", addr))
			// A reload keeps the counts.
			srv.Update(srv.Settings())
			ask(t, c, r, "Beautiful is better than?", "Ugly.")
			// The server records a latency just after writing its answer.
			waitFor(t, func() bool { return srv.Metrics().LatencyCount == 5 })
			m := srv.Metrics()
			if m.Answers["Ugly."] != 3 || m.Unknown != 2 || m.Refused[RefusedAccess] != 1 || m.Accepted < 2 || m.LatencyCount != 5 {
				t.Fatalf("metrics %+v", m)
			}
		})
	}
}

// TestHealthCheckQuiet: HAProxy's health check (check-send-proxy sends a
// LOCAL header, asks, reads the answer and resets) is served and logs
// nothing at info, on every engine (seen: an accepted line and a WARN
// "connection error ... reset by peer" per instance every 500 ms). A
// client that resets after its answers logs one info line, not a
// warning.
func TestHealthCheckQuiet(t *testing.T) {
	local := "\r\n\r\n\x00\r\nQUIT\n\x20\x00\x00\x00"
	for _, e := range engines {
		t.Run(string(e.engine), func(t *testing.T) {
			st := Settings{Limits: testLimits(), Proxy: Proxy{Enabled: true, Trusted: prefixes(t, "127.0.0.1/32")}}
			srv, addr, lb := startLogged(t, e.engine, st)
			for i, hello := range []string{local, ""} {
				c := dialFrom(t, "127.0.0.1", addr)
				r := bufio.NewReader(c)
				ask(t, c, r, hello+"Beautiful is better than?", "Ugly.")
				c.(*net.TCPConn).SetLinger(0)
				c.Close() // RST, as HAProxy's check does
				waitFor(t, func() bool { return srv.Stats().Done == uint64(i+1) })
			}
			lines := strings.Split(strings.TrimSpace(lb.String()), "\n")
			var conv []string
			for _, l := range lines {
				if strings.Contains(l, "client=127.0.0.1:") {
					conv = append(conv, l)
				}
			}
			// Only the second (a client, not a check): accepted, closed.
			if len(conv) != 2 || !strings.Contains(conv[0], "msg=accepted") || !strings.Contains(conv[1], "level=INFO msg=closed") || !strings.Contains(conv[1], "by=reset") {
				t.Fatalf("log lines of the check and the client:\n%s", strings.Join(conv, "\n"))
			}
		})
	}
}
