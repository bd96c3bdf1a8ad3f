package daemon

import (
	"bytes"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"zend/config"
)

// TestListenBacklog checks the backlog by its effect: connections that
// nobody accepts complete in the kernel only while the accept queue has
// room. With the system maximum a burst of clients all connect; with a
// backlog of 1 the third one cannot.
func TestListenBacklog(t *testing.T) {
	tests := []struct {
		name    string
		backlog int
		dials   int
		wantOK  int // dials that must complete
		wantAll bool
	}{
		// 0 means net.core.somaxconn: a burst of 200 all complete.
		{"system maximum", 0, 200, 200, true},
		// A backlog of 1 holds at most 2 (Linux allows backlog+1).
		{"backlog 1", 1, 4, 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := Listen("127.0.0.1:0", tt.backlog, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ok := 0
			for i := 0; i < tt.dials; i++ {
				c, err := net.DialTimeout("tcp", ln.Addr().String(), 500*time.Millisecond)
				if err != nil {
					continue
				}
				defer c.Close()
				ok++
			}
			if tt.wantAll && ok != tt.wantOK || !tt.wantAll && ok > tt.wantOK {
				t.Fatalf("%d of %d connections completed without accept, want %d", ok, tt.dials, tt.wantOK)
			}
		})
	}
}

func TestListenErrors(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// The address in use is reported with the address.
	if _, err := Listen(ln.Addr().String(), 0, nil); err == nil {
		t.Fatal("second bind of the same address succeeded")
	} else if want := "listen on " + ln.Addr().String() + ": bind: address already in use"; err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	// IPv6 loopback, when the machine has it.
	if l6, err := Listen("[::1]:0", 0, nil); err == nil {
		l6.Close()
	}
}

func TestSystemBacklog(t *testing.T) {
	if n := SystemBacklog(); n < 1 {
		t.Fatalf("SystemBacklog() = %d", n)
	}
}

// TestListenDualStack checks which clients each kind of listen address
// serves: ":PORT" and "[::]:PORT" are one socket for IPv4 and IPv6
// (IPV6_V6ONLY off), "0.0.0.0:PORT" stays IPv4 only.
func TestListenDualStack(t *testing.T) {
	if l6, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skip("no IPv6 loopback here")
	} else {
		l6.Close()
	}
	tests := []struct {
		addr   string
		v4, v6 bool // 127.0.0.1 and ::1 connect
	}{
		// Every interface, both families: what the README promises.
		{":0", true, true},
		// The IPv6 wildcard, spelled out: both families too.
		{"[::]:0", true, true},
		// The IPv4 wildcard stays IPv4 only.
		{"0.0.0.0:0", true, false},
		// Loopback addresses are their own family.
		{"127.0.0.1:0", true, false},
		{"[::1]:0", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			ln, err := Listen(tt.addr, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			_, port, _ := net.SplitHostPort(ln.Addr().String())
			if config.DualStack(tt.addr) {
				// Off explicitly, not by the system's default
				// (net.ipv6.bindv6only; the BSDs default to on).
				fd, err := rawFD(ln)
				if err != nil {
					t.Fatal(err)
				}
				if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY); err != nil || v != 0 {
					t.Errorf("Listen(%q): IPV6_V6ONLY = %d (%v), want 0", tt.addr, v, err)
				}
			}
			for _, c := range []struct {
				host string
				want bool
			}{{"127.0.0.1", tt.v4}, {"::1", tt.v6}} {
				conn, err := net.DialTimeout("tcp", net.JoinHostPort(c.host, port), 5*time.Second)
				if err == nil {
					conn.Close()
				}
				if got := err == nil; got != c.want {
					t.Errorf("Listen(%q): a client of %s connects: %v, want %v (%v)", tt.addr, c.host, got, c.want, err)
				}
			}
		})
	}
}

// TestListenWithoutIPv6 plays a host without IPv6 (socket(AF_INET6)
// fails with EAFNOSUPPORT, as with ipv6.disable=1): ":PORT" falls back to
// IPv4 and the log says so, while an IPv6 address is an error. A bind
// that fails for another reason is an error too, not a fallback.
func TestListenWithoutIPv6(t *testing.T) {
	t.Run("no IPv6", func(t *testing.T) {
		socket = func(domain, typ, proto int) (int, error) {
			if domain == unix.AF_INET6 {
				return -1, unix.EAFNOSUPPORT
			}
			return unix.Socket(domain, typ, proto)
		}
		defer func() { socket = unix.Socket }()
		var logb bytes.Buffer
		ln, err := Listen(":0", 0, slog.New(slog.NewTextHandler(&logb, nil)))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		if ip := ln.Addr().(*net.TCPAddr).IP; ip.To4() == nil {
			t.Errorf("bound %v, want IPv4", ln.Addr())
		}
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+strings.TrimPrefix(ln.Addr().String(), "0.0.0.0:"), 5*time.Second); err != nil {
			t.Errorf("IPv4 client: %v", err)
		} else {
			c.Close()
		}
		if want := `msg="this host has no IPv6: listening on IPv4 only" addr=:0 err="listen on :0: socket: address family not supported by protocol"`; !strings.Contains(logb.String(), want) {
			t.Errorf("log %q lacks %q", logb.String(), want)
		}
		if _, err := Listen("[::1]:0", 0, nil); err == nil || !strings.Contains(err.Error(), "address family not supported") {
			t.Errorf("Listen([::1]:0) without IPv6: %v, want the socket error", err)
		}
	})
	t.Run("port taken for IPv6", func(t *testing.T) {
		// An IPv6-only socket holds the port: ":PORT" cannot serve IPv6
		// there, and must say so rather than serve IPv4 alone.
		l6, err := net.Listen("tcp6", "[::]:0")
		if err != nil {
			t.Skip("no IPv6 here")
		}
		defer l6.Close()
		_, port, _ := net.SplitHostPort(l6.Addr().String())
		ln, err := Listen(":"+port, 0, nil)
		if err == nil {
			ln.Close()
			t.Fatalf("Listen(:%s) bound %v beside an IPv6 socket on its port, want address already in use", port, ln.Addr())
		}
		if want := "listen on :" + port + ": bind: address already in use"; err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	})
}

// TestAdoptIPv4OnlySocket: an upgrade from a zend that bound ":PORT" for
// IPv4 only hands over that socket; the new daemon keeps it (rebinding
// would refuse clients) and says that IPv6 waits for a restart.
func TestAdoptIPv4OnlySocket(t *testing.T) {
	var logb bytes.Buffer
	s := &Service{log: slog.New(slog.NewTextHandler(&logb, nil)), lns: map[string]net.Listener{}}
	old, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	dual, err := Listen(":0", 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dual.Close()
	s.Adopt(map[string]net.Listener{":1060": old, "[::]:1061": dual})
	if s.lns[":1060"] != old || s.lns["[::]:1061"] != dual {
		t.Fatalf("adopted %v", s.lns)
	}
	want := `msg="the socket inherited for this address is IPv4 only: restart zend to serve IPv6 on it too" addr=:1060 socket=` + old.Addr().String()
	if got := logb.String(); !strings.Contains(got, want) || strings.Count(got, "\n") != 1 {
		t.Errorf("log %q, want one line %q", got, want)
	}
}
